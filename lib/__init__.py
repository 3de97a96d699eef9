"""Shared code of the copy-move forgery detection project: every bin/ script imports from here."""
