"""Evaluation corpora for the Offbeat Engine: DJ mixes with exact ground truth (see ``truth.py`` for the format)."""
