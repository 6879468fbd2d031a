"""`python -m photodrag` is the `photodrag` command."""

from photodrag.cli import main

main(prog_name='photodrag')
