"""What the remote commands print: tables for people, JSON for scripts, and the disk-usage
table and total that `du` shows for a registry and for a store alike."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from dockyard.cli.common import human_size
from dockyard.client.operations import Usage


@dataclass
class Output:
    as_json: bool
    exact_sizes: bool = False

    @functools.cached_property
    def console(self) -> Console:
        # Not a terminal (a pipe, a file): never wrap or cut digests to 80 columns.
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=400)
        return console

    def size(self, size: int | None) -> str:
        if size is None:
            return "?"
        return f"{size} B" if self.exact_sizes else human_size(size)

    def json(self, value: Any) -> None:
        click.echo(json.dumps(value, indent=2))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]],
              title: str | None = None, right: Sequence[str] = (),
              footer: Sequence[str] | None = None) -> None:
        table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left",
                      show_footer=footer is not None, pad_edge=False)
        for n, column in enumerate(columns):
            table.add_column(column, justify="right" if column in right else "left",
                             footer=footer[n] if footer else "", overflow="fold")
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for key, value in pairs:
            grid.add_row(key, value)
        self.console.print(grid)

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)


def show_usage_table(output: Output, result: Usage) -> None:
    rows = [[r.name, str(r.tags), str(len(r.walk.manifests)), str(len(r.walk.blobs)),
             output.size(r.size)] for r in result.repositories]
    footer = ["total", "", str(len(result.unique_manifests)), str(len(result.unique_layers)),
              output.size(result.total)]
    output.table(["REPOSITORY", "TAGS", "MANIFESTS", "BLOBS", "SIZE"], rows,
                 right=["TAGS", "MANIFESTS", "BLOBS", "SIZE"], footer=footer)


def sharing_text(output: Output, result: Usage) -> str:
    """What the total counts, said so that it cannot be read two ways."""
    total = f"total {output.size(result.total)}"
    shared = result.shared
    if not shared:
        return f"{total}; no blob is shared between repositories"
    count = len(shared)
    return (f"{total}; {output.size(sum(shared.values()))} of it ({count} "
            f"blob{'' if count == 1 else 's'}) is shared by several repositories and "
            f"counted once (the repository sizes above add up to "
            f"{output.size(result.sum_of_repositories)})")
