"""One module per forge: github.py, gitlab.py (adapters/forge.py says what a forge gives)."""
