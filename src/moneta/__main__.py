"""`python -m moneta` runs the CLI."""

from moneta.cli import main

main()
