"""MkDocs hooks: pages that stay in sync with the repository instead of copies of it.

- The notebooks in `notebooks/` are rendered under `notebooks/` of the site (by mkdocs-jupyter,
  from their committed outputs; nothing is executed), so they live in one place only.
- `<!-- benchmark-results -->` in a page is replaced by every `benchmarks/results/*.md`, with
  their headings demoted one level, so the benchmark page shows whatever the benchmarks wrote;
  the plots `benchmarks/results/*.png` are copied into the site and shown (where a table links
  to them, or after the tables).
- `<!-- examples -->` is replaced by the docstring of every `examples/*.py`.
- `<!-- public-api -->` is replaced by a table of every name `pnmcmc/__init__.py` re-exports
  (`from .x import Name as Name`), each linked to its entry in the API reference: a public name
  that no API page documents is then an unresolved link, which fails the strict build.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files, config):
    for path in sorted(RESULTS.glob("*.png")):
        files.append(
            File(
                f"benchmarks/results/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        # A real source file with the repository root as its source directory (not File.generated:
        # mkdocs-jupyter's wrapper reads the path from src_dir, which generated files lack).
        files.append(
            File(
                f"notebooks/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def _demote(text: str) -> str:
    return re.sub(r"^(#{1,5}) ", r"#\1 ", text, flags=re.MULTILINE)


def _unlink(text: str) -> str:
    """Relative links in a results file point into the repository, not the site: keep the text and
    show the target as code (a dangling link would fail the strict build)."""

    def replace(match):
        label, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+://", target):
            return match.group(0)
        return label if target.startswith("#") else f"{label} (`{target}`)"

    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", replace, text)


def _images(text: str, shown: set) -> str:
    """Point image links to the plots copied from `benchmarks/results/` (on the benchmarks page)."""

    def replace(match):
        alt, target = match.group(1), match.group(2)
        name = Path(target).name
        if re.match(r"[a-z]+://", target):
            return match.group(0)
        if (RESULTS / name).is_file():
            shown.add(name)
            return f"![{alt}](benchmarks/results/{name})"
        return alt  # an image that is not in the repository: keep its description only

    return re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", replace, text)


def _benchmark_results() -> str:
    """Every results table and plot, whichever exist now (none is required)."""
    parts, shown = [], set()
    for path in sorted(RESULTS.glob("*.md")):
        parts.append(_images(_unlink(_demote(path.read_text().strip())), shown))
        parts.append(f"*Source: `benchmarks/results/{path.name}`.*")
    plots = [path.name for path in sorted(RESULTS.glob("*.png")) if path.name not in shown]
    if plots:
        parts.append("## Plots")
        parts += [f"![{name}](benchmarks/results/{name})\n\n*`benchmarks/results/{name}`*" for name in plots]
    return "\n\n".join(parts) if parts else "*No benchmark results have been recorded yet.*"


def _examples() -> str:
    parts = []
    for path in sorted((ROOT / "examples").glob("[!_]*.py")):  # _published.py is shared code
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        title, _, body = doc.partition("\n")
        parts.append(f"## `examples/{path.name}`\n\n{title}\n{_indent_commands(body)}")
    return "\n\n".join(parts)


def _indent_commands(body: str) -> str:
    """Docstring blocks indented by 4 spaces are shell commands: fence them."""
    out, block = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("    "):
            block.append(line[4:])
            continue
        if block:
            out += ["```bash", *block, "```"]
            block = []
        out.append(line)
    return "\n".join(out)


def _public_names() -> list[str]:
    tree = ast.parse((ROOT / "pnmcmc" / "__init__.py").read_text())
    return [
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name
    ]


def _summary(obj) -> str:
    """The first sentence of the docstring's first paragraph, on one line."""
    paragraph = (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")
    sentence = re.split(r"(?<=\.)\s", paragraph, maxsplit=1)[0]
    return sentence.replace("|", "\\|")


def _public_api() -> str:
    pnmcmc = importlib.import_module("pnmcmc")
    rows = ["| name | kind | summary |", "|---|---|---|"]
    for name in _public_names():
        obj = getattr(pnmcmc, name)
        kind = "module" if inspect.ismodule(obj) else "class" if inspect.isclass(obj) else "function"
        rows.append(f"| [`pn.{name}`][pnmcmc.{name}] | {kind} | {_summary(obj)} |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files):
    if "<!-- benchmark-results -->" in markdown:
        markdown = markdown.replace("<!-- benchmark-results -->", _benchmark_results())
    if "<!-- public-api -->" in markdown:
        markdown = markdown.replace("<!-- public-api -->", _public_api())
    if "<!-- examples -->" in markdown:
        markdown = markdown.replace("<!-- examples -->", _examples())
    return markdown
