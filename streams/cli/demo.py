"""``distill demo``: the whole loop on bundled sample data."""

import click

COMMANDS = []
