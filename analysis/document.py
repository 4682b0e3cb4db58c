"""A report as plain blocks (text, notes, tables, figures), written as HTML, Markdown, CSV
and PNG in one go.

The report and the comparison share this, so both escape every string the same way
and both appear all at once: files are written to a hidden sibling folder that replaces
the old report only when complete, so a crash never leaves half a report in its place.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from search.errors import UserError

MARKER = "report.json"  # says "this folder is a report": the only kind we replace
DPI = 110


@dataclass
class Note:
    """Something the reader must know is missing or partial; shown in a box."""

    text: str


@dataclass
class Table:
    frame: pd.DataFrame  # shown as is: format numbers before
    caption: str = ""


@dataclass
class Plot:
    name: str  # file stem of the PNG
    figure: Figure
    caption: str
    data: dict[str, pd.DataFrame] = field(default_factory=dict)  # CSV file name -> frame


@dataclass
class Section:
    title: str
    blocks: list[str | Note | Table | Plot] = field(default_factory=list)
    data: dict[str, pd.DataFrame] = field(default_factory=dict)  # CSVs behind its tables


@dataclass
class Document:
    title: str
    intro: list[str | Note]
    sections: list[Section]
    about: dict = field(default_factory=dict)  # written to report.json

    def plots(self) -> list[Plot]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Plot)]


def write(document: Document, out_dir: Path) -> Path:
    """Write every file of `document` into `out_dir`, replacing an earlier report there."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not _replaceable(out_dir):
        raise UserError(
            f"{out_dir} exists and is not a report folder (no {MARKER}); "
            "choose another output folder"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the report from other readers
        _write_files(document, tmp)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _replaceable(folder: Path) -> bool:
    return folder.is_dir() and ((folder / MARKER).is_file() or not any(folder.iterdir()))


def _write_files(document: Document, folder: Path) -> None:
    pngs = {}
    for plot in document.plots():
        buffer = io.BytesIO()
        plot.figure.savefig(buffer, format="png", dpi=DPI)
        pngs[plot.name] = buffer.getvalue()
        (folder / f"{plot.name}.png").write_bytes(pngs[plot.name])
        for name, frame in plot.data.items():
            frame.to_csv(folder / name, index=False)
    for section in document.sections:
        for name, frame in section.data.items():
            frame.to_csv(folder / name, index=False)
    (folder / "index.html").write_text(render_html(document, pngs), encoding="utf-8")
    (folder / "report.md").write_text(render_markdown(document), encoding="utf-8")
    about = {"generated": datetime.now(UTC).isoformat(timespec="seconds"), **document.about}
    (folder / MARKER).write_text(json.dumps(about, indent=2, default=str) + "\n")


# ---------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1250px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; }
figcaption, caption { color: #444; font-size: 0.92em; text-align: left; }
.note { border-left: 4px solid #d55e00; background: #fff4ec; padding: 0.5em 1em; }
nav ol { columns: 2; }
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def render_html(document: Document, pngs: dict[str, bytes]) -> str:
    """One self-contained page: figures inline as base64 PNG, no network, no scripts."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may load from anywhere: images are data: URIs, the style is inline.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_esc(document.title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_esc(document.title)}</h1>",
    ]
    parts += [_html_block(b, pngs) for b in document.intro]
    parts.append("<nav><ol>")
    parts += [
        f'<li><a href="#s{i}">{_esc(s.title)}</a></li>'
        for i, s in enumerate(document.sections, start=1)
    ]
    parts.append("</ol></nav>")
    for i, section in enumerate(document.sections, start=1):
        parts.append(f'<section id="s{i}"><h2>{i}. {_esc(section.title)}</h2>')
        parts += [_html_block(b, pngs) for b in section.blocks]
        if section.data:
            parts.append(f"<p><small>Data: {_esc(', '.join(section.data))}</small></p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_block(block, pngs: dict[str, bytes]) -> str:
    if isinstance(block, str):
        return f"<p>{_esc(block)}</p>"
    if isinstance(block, Note):
        return f'<p class="note">{_esc(block.text)}</p>'
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Plot):
        png = base64.b64encode(pngs[block.name]).decode("ascii")
        files = ", ".join([f"{block.name}.png", *block.data])
        return (
            f'<figure id="{_esc(block.name)}"><img src="data:image/png;base64,{png}" '
            f'alt="{_esc(block.caption)}"><figcaption>{_esc(block.caption)} '
            f"<small>(files: {_esc(files)})</small></figcaption></figure>"
        )
    raise TypeError(f"unknown block {type(block).__name__}")


def _html_table(table: Table) -> str:
    rows = ["<table>"]
    if table.caption:
        rows.append(f"<caption>{_esc(table.caption)}</caption>")
    rows.append("<tr>" + "".join(f"<th>{_esc(c)}</th>" for c in table.frame.columns) + "</tr>")
    for values in table.frame.itertuples(index=False):
        rows.append("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in values) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)


# ---------------------------------------------------------------- Markdown


def _md(value) -> str:
    """Escaped for Markdown: HTML entities (Markdown passes raw HTML through), and the
    characters that would start a link, emphasis, code or a table cell."""
    text = html.escape(str(value), quote=False).replace("\n", " ")
    for char in "\\`*[]|":
        text = text.replace(char, "\\" + char)
    return text


def render_markdown(document: Document) -> str:
    lines = [f"# {_md(document.title)}", ""]
    for block in document.intro:
        lines += [_md_block(block), ""]
    for i, section in enumerate(document.sections, start=1):
        lines += [f"## {i}. {_md(section.title)}", ""]
        for block in section.blocks:
            lines += [_md_block(block), ""]
        if section.data:
            lines += [f"Data: {_md(', '.join(section.data))}", ""]
    return "\n".join(lines)


def _md_block(block) -> str:
    if isinstance(block, str):
        return _md(block)
    if isinstance(block, Note):
        return f"> **Note:** {_md(block.text)}"
    if isinstance(block, Table):
        frame = block.frame
        out = [f"*{_md(block.caption)}*", ""] if block.caption else []
        out.append("| " + " | ".join(_md(c) for c in frame.columns) + " |")
        out.append("|" + " --- |" * len(frame.columns))
        out += [
            "| " + " | ".join(_md(v) for v in row) + " |" for row in frame.itertuples(index=False)
        ]
        return "\n".join(out)
    if isinstance(block, Plot):
        files = ", ".join(block.data)
        data = f" Data: {_md(files)}." if files else ""
        return f"![{_md(block.caption)}]({block.name}.png)\n\n{_md(block.caption)}{data}"
    raise TypeError(f"unknown block {type(block).__name__}")
