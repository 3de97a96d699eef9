#!/usr/bin/env python
"""Convert best checkpoints of earlier versions (torch pickles, `<run>_best.pth`) to safetensors.

    python bin/convert_checkpoint.py models/highres_no_ela_v3_best.pth   # -> models/highres_no_ela_v3_best.safetensors
    python bin/convert_checkpoint.py models/*_best.pth

Model checkpoints are safetensors now: loading one cannot run code. An old `.pth` is read here
with torch.load(weights_only=True), which refuses anything but tensors and plain containers, so a
crafted file fails instead of running; the model is rebuilt from it before the new file is written.
Convert only files of this project; the originals are left as they are.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("checkpoints", type=Path, nargs="+", help="the .pth best checkpoints to convert")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing .safetensors of the same name")
    args = parser.parse_args(argv)

    from lib.models.checkpoints import convert_checkpoint, describe
    for path in args.checkpoints:
        output = convert_checkpoint(path, overwrite=args.overwrite)
        print(f"{path} -> {output}: {describe(output)}")
    return 0


if __name__ == "__main__":
    run(main)
