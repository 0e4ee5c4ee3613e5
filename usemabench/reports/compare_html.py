"""The comparison page (`usemabench compare`) as one self-contained HTML file, from the same blocks as its Markdown."""

from __future__ import annotations

import html
import re

from usemabench.leaderboard.compare import Block
from usemabench.reports.html import STYLE, html_table

_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text with `code` spans as <code> (commands the reader copies)."""
    return _CODE.sub(lambda match: f"<code>{match.group(1)}</code>", html.escape(text, quote=False))


def compare_html(blocks: list[Block]) -> str:
    """The page; the how-to-read list is folded under a toggle, as on the leaderboard page."""
    title = next((block.text for block in blocks if block.kind == "heading" and block.level == 1), "usemabench compare")
    body = []
    for block in blocks:
        if block.kind == "heading":
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif block.kind == "text":
            body.append(f"<p>{_inline(block.text)}</p>")
        elif block.kind == "table":
            body.append(html_table(block.table))
        elif block.kind == "list":
            body += ["<ul>", *[f"<li>{_inline(item)}</li>" for item in block.items], "</ul>"]
        elif block.kind == "details":
            body += [f'<details class="how-to-read"><summary>{_inline(block.text)}</summary><ul>',
                     *[f"<li>{_inline(item)}</li>" for item in block.items], "</ul></details>"]
    page = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>", *body, "</body>", "</html>",
    ]
    return "\n".join(page) + "\n"
