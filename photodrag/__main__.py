"""`python -m photodrag` is the `photodrag` command."""

from photodrag.pipeline.cli import main

main(prog_name='photodrag')
