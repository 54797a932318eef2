"""A document built once as blocks and written as both Markdown and standalone HTML.

Reports are generated, never hand-edited, so a handful of block types is enough, and building
both formats from the same blocks keeps them identical in content without a Markdown parser.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Document:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> "Document":
        self.blocks.append(("heading", level, text))
        return self

    def paragraph(self, text: str) -> "Document":
        self.blocks.append(("paragraph", text))
        return self

    def bullets(self, items: list[str]) -> "Document":
        if items:
            self.blocks.append(("bullets", list(items)))
        return self

    def table(self, header: list[str], rows: list[list]) -> "Document":
        self.blocks.append(("table", list(header), [[_cell(value) for value in row]
                                                    for row in rows]))
        return self

    def image(self, path: str, caption: str) -> "Document":
        self.blocks.append(("image", path, caption))
        return self

    def code(self, text: str) -> "Document":
        self.blocks.append(("code", text))
        return self

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                lines += [f"{'#' * block[1]} {block[2]}", ""]
            elif kind == "paragraph":
                lines += [block[1], ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in block[1]] + [""]
            elif kind == "table":
                header, rows = block[1], block[2]
                lines.append("| " + " | ".join(_md_cell(cell) for cell in header) + " |")
                lines.append("|" + "|".join("---" for _ in header) + "|")
                lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |"
                          for row in rows]
                lines.append("")
            elif kind == "image":
                lines += [f"![{block[2]}]({block[1]})", ""]
            elif kind == "code":
                lines += ["```", block[1], "```", ""]
        return "\n".join(lines)

    def html(self) -> str:
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                level = min(6, block[1])
                parts.append(f"<h{level}>{html.escape(block[2])}</h{level}>")
            elif kind == "paragraph":
                parts.append(f"<p>{html.escape(block[1])}</p>")
            elif kind == "bullets":
                items = "".join(f"<li>{html.escape(item)}</li>" for item in block[1])
                parts.append(f"<ul>{items}</ul>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block[1])
                body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
                               + "</tr>" for row in block[2])
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                             "</table>")
            elif kind == "image":
                parts.append(f'<figure><img src="{html.escape(block[1])}" alt="'
                             f'{html.escape(block[2])}"><figcaption>{html.escape(block[2])}'
                             "</figcaption></figure>")
            elif kind == "code":
                parts.append(f"<pre>{html.escape(block[1])}</pre>")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
        )


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#222}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:.5rem;"
    "overflow-x:auto}figcaption{font-size:.85rem;color:#555}"
)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
