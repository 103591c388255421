"""The README as a newcomer reads it.

It says what digitnet is first (one sentence, the two commands, the contents); every
Python snippet runs as written, in order, in one process and a fresh folder; every
command line names a real command and real flags, and commands are written one way
(through ``.venv/bin/``); its speed tables are the benchmark's own; every file it
links to exists; and its list of modules matches ``src/``.

The library snippet trains with ``kernel="auto"``, as a reader's run would: whichever
loop that picks, the snippets after it must run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitnet.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
#: Every Markdown file a reader is sent to from the README.
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
PAGES += sorted((ROOT / "benchmarks" / "results").glob("*.md"))
#: Those written by hand; the benchmark scripts write the rest (bench.md, load.md).
WRITTEN = [p for p in PAGES if p.name not in ("bench.md", "load.md")]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
#: ``--flag a|b|c`` in a usage line: the values it may take.
ALTERNATIVES = re.compile(r"(--[a-z-]+) ([\w.-]+(?:\|[\w.-]+)+)")
INLINE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)*)`(?!`)")
SETUP = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/digitnet serve"
TESTS = (
    "(command -v chromium && dpkg -s fonts-dejavu-core fonts-liberation >/dev/null 2>&1"
    " || (apt-get update && apt-get install -y chromium fonts-dejavu-core fonts-liberation))"
    " && python3 -m venv .venv && .venv/bin/pip install -e '.[test,bench,fast]'"
    " && .venv/bin/python -m pytest"
)
#: Programs that run from the environment the first command makes, so must be named
#: through it (``.venv/bin/pip``), never bare.
VENV_PROGRAMS = {"digitnet", "pip", "pip3", "python", "pytest", "ruff", "twine"}


def fenced(text: str, *kinds: str) -> list[tuple[str, str, int]]:
    """The fenced blocks of ``text`` of the given kinds: (kind, body, line number)."""
    return [
        (m[1], m[2], text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
        if m[1] in kinds
    ]


def prose(text: str) -> str:
    """``text`` without its fenced blocks."""
    return FENCE.sub("", text)


def inline_code(text: str) -> list[str]:
    """Every inline code span outside fenced blocks, line breaks read as spaces."""
    return [" ".join(span.split()) for span in INLINE.findall(prose(text))]


def shell_commands(body: str) -> list[str]:
    """The simple commands of a shell block: continuation lines joined, comments
    dropped, split at ``&&``, ``||``, ``;``, ``|`` and parentheses."""
    joined = body.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line)
        commands += [c.strip() for c in re.split(r"&&|\|\||[;|()]", line) if c.strip()]
    return commands


def usage_lines(body: str) -> list[str]:
    """The commands of a usage block: each starts at the left margin, its indented
    continuation lines joined to it, comments dropped (``|`` there means "or")."""
    commands: list[str] = []
    for line in (re.sub(r"(^|\s)#.*$", "", line) for line in body.splitlines()):
        if line.startswith((" ", "\t")) and commands:
            commands[-1] += " " + line.strip()
        elif line.strip():
            commands.append(line.strip())
    return commands


def commands_in(kind: str, body: str) -> list[str]:
    """The commands of a fenced block: shell for ``sh``, usage lines for ``text``."""
    return shell_commands(body) if kind == "sh" else usage_lines(body)


def program(command: str) -> list[str]:
    """The words of a command, leading ``NAME=value`` assignments dropped."""
    words = command.split()
    while words and re.fullmatch(r"[A-Za-z_]\w*=\S*", words[0]):
        words = words[1:]
    return words


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def subparsers() -> dict:
    """The CLI's commands: name -> its argparse parser.  (argparse lists a parser's
    arguments only in ``_actions``; the sub-commands are the action whose choices are
    parsers.)"""
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(getattr(a, "choices", None), dict)]
    return dict(action.choices)


def flags(parser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings} - {"-h", "--help"}


# -- what it is, first ---------------------------------------------------------------------


def test_opens_with_one_sentence_then_the_two_commands_then_the_contents():
    head = TEXT.split("\n## ", 1)[0]
    chunks = [c for c in re.split(r"\n\s*\n", head.strip()) if c.strip()]
    title, sentence, label1, block1, label2, block2, contents = chunks[:7]
    assert title == "# digitnet"
    assert "\n" not in sentence and sentence.endswith("."), sentence
    assert not re.search(r"[.!?]\s+[A-Z]", sentence), f"more than one sentence: {sentence}"
    for label in (label1, label2):
        assert "\n" not in label and label.endswith(":") and len(label) <= 100, label
    assert block1 == f"```sh\n{SETUP}\n```"
    assert block2 == f"```sh\n{TESTS}\n```"
    first_two = [body.strip() for _, body, _ in fenced(TEXT, "sh")[:2]]
    assert first_two == [SETUP, TESTS], "the two commands must be the file's first sh blocks"
    assert contents.startswith("**Contents**")


def test_contents_links_every_section_in_order():
    head = TEXT.split("\n## ", 1)[0]
    contents = [c for c in re.split(r"\n\s*\n", head) if c.startswith("**Contents**")][0]
    sections = re.findall(r"^## (.+)$", prose(TEXT), re.M)
    assert re.findall(r"\]\(#([^)]+)\)", contents) == [slug(s) for s in sections]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_linked_file_and_anchor_exists(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", prose(linked.read_text(encoding="utf-8")), re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading #{anchor}"


def test_the_mnist_credit_is_kept():
    credit = " ".join(TEXT.split("\n## MNIST\n", 1)[1].split())
    assert "Yann LeCun, Corinna Cortes and Christopher J. C. Burges" in credit
    assert "CC BY-SA 3.0" in credit


# -- snippets -----------------------------------------------------------------------------


def test_every_python_snippet_runs_in_order(tmp_path, monkeypatch):
    """Every ```python block, in order, in one namespace, in an empty folder: as a
    reader pasting them into one Python process would run them.  No block is skipped."""
    monkeypatch.chdir(tmp_path)
    snippets = fenced(TEXT, "python")
    assert len(snippets) >= 7
    scope: dict = {"__name__": "__readme__"}
    for _, body, line in snippets:
        exec(compile(body, f"README.md, the python block at line {line}", "exec"), scope)
    # What the snippets promise, checked on what they made.
    data, model = scope["data"], scope["model"]
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "digits.onnx").is_file()
    assert scope["table"].lost.shape == (32, 10) and scope["wanted"].shape == (16, 784)
    assert scope["prediction"].digit == 7  # the first test digit, drawn 10 times larger
    assert scope["pad"].digit == model.network.predict(data.test_images[:1])[0]
    ours = model.network.predict(data.test_images)
    np.testing.assert_array_equal(scope["guess"], ours)  # ONNX Runtime's guess
    np.testing.assert_array_equal(scope["activations"].argmax(axis=1), ours)


def row_names(text: str) -> list[str]:
    """The first cell of every table row of ``text``."""
    return [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")]


def test_the_script_behind_the_neuron_spreads_runs(tmp_path):
    """``benchmarks/neurons.py`` measures what "What the neurons do" quotes; one seed of
    one epoch (on the NumPy loop, its default) shows it still runs and writes every row."""
    out = tmp_path / "neurons.md"
    command = [sys.executable, str(ROOT / "benchmarks" / "neurons.py"), "--seeds", "0"]
    command += ["--epochs", "1", "--models", str(tmp_path), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ours = (ROOT / "benchmarks" / "results" / "neurons.md").read_text(encoding="utf-8")
    assert row_names(out.read_text(encoding="utf-8")) == row_names(ours)


# -- commands -----------------------------------------------------------------------------


def command_lines(page: Path) -> list[tuple[str, list[str]]]:
    """Every ``.venv/bin/digitnet`` command on a page, in shell and text blocks and in
    inline code: (where, its arguments)."""
    text = page.read_text(encoding="utf-8")
    found = []
    for kind, body, line in fenced(text, "sh", "text"):
        for command in commands_in(kind, body):
            words = program(command)
            if words and words[0] == ".venv/bin/digitnet":
                found.append((f"{page.name}:{line} {kind} block", words[1:]))
    for span in inline_code(text):
        words = span.split()
        if words[0] == ".venv/bin/digitnet":
            found.append((f"{page.name} `{span}`", words[1:]))
    return found


def is_usage(args: list[str]) -> bool:
    """A usage line (``train [--out PATH] ...``, ``plot KIND MODEL``) rather than a
    command to run: it has brackets, alternatives, ellipses or upper-case placeholders."""
    return any(re.search(r"[\[\]|]|\.\.\.|^[A-Z][A-Z.]{2,}$", word) for word in args)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_line_names_a_real_command_and_real_flags(page):
    commands = subparsers()
    for where, args in command_lines(page):
        name = args[0] if args else ""
        if name in ("COMMAND", "..."):  # `.venv/bin/digitnet COMMAND --help`: any command
            assert set(args[1:]) <= {"--help"}, where
            continue
        assert name in commands, f"{where}: no command {name!r}; there are {sorted(commands)}"
        if is_usage(args):
            named = {m for w in args for m in re.findall(r"--[a-z][a-z-]*", w)}
            unknown = named - flags(commands[name])
            assert not unknown, f"{where}: {name} has no {sorted(unknown)}"
            choices = {o: a.choices for a in commands[name]._actions for o in a.option_strings}
            for flag, alternatives in ALTERNATIVES.findall(" ".join(args)):
                if choices[flag] is not None:
                    wrong = set(alternatives.split("|")) - set(choices[flag])
                    assert not wrong, f"{where}: {flag} takes no {sorted(wrong)}"
        else:
            try:
                build_parser().parse_args(shlex.split(" ".join(args)))
            except SystemExit as exit:
                pytest.fail(f"{where}: the CLI refuses {' '.join(args)!r} (exit {exit.code})")


def test_the_synopsis_lists_every_command_and_every_flag():
    (synopsis,) = [body for _, body, _ in fenced(TEXT, "text") if ".venv/bin/digitnet" in body]
    listed: dict[str, set[str]] = {}
    for command in usage_lines(synopsis):
        name = command.split()[1]
        listed[name] = set(re.findall(r"--[a-z][a-z-]*", command))
    commands = subparsers()
    assert set(listed) == set(commands)
    for name, parser in commands.items():
        assert listed[name] == flags(parser), f"{name}: {listed[name] ^ flags(parser)}"


@pytest.mark.parametrize("page", WRITTEN, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_are_written_one_way(page):
    """Through the environment the first command makes: ``.venv/bin/digitnet``,
    ``.venv/bin/pip install -e '.[EXTRA]'``; a bare ``digitnet`` in prose only names
    a command (``digitnet train``), with no arguments."""
    text = page.read_text(encoding="utf-8")
    commands = subparsers()
    for kind, body, line in fenced(text, "sh", "text"):
        for command in commands_in(kind, body):
            words = program(command)
            where = f"{page.name}:{line} {kind} block: {command!r}"
            assert words[0] not in VENV_PROGRAMS, f"{where}: write .venv/bin/{words[0]}"
            if words[0] == "python3":
                assert words[1:3] == ["-m", "venv"], f"{where}: write .venv/bin/python"
    for span in inline_code(text):
        words = program(span) or [""]
        if words[0] == "digitnet":  # the package, or a command by name
            assert len(words) == 1 or (len(words) == 2 and words[1] in commands), (
                f"{page.name} `{span}`: a command to run is written .venv/bin/digitnet ..."
            )
        else:
            assert words[0] not in VENV_PROGRAMS, f"{page.name} `{span}`: write .venv/bin/"
    assert not re.search(r"pip install [^`\n]*digitnet\[", text), "extras: pip install -e '.[X]'"


# -- numbers and layout -------------------------------------------------------------------


def tables(text: str) -> list[str]:
    """Every Markdown table of ``text``, its rows as written."""
    return [t.rstrip("\n") for t in re.findall(r"(?:^\|.*\|\n)+", text, re.M)]


def test_the_speed_tables_are_the_benchmarks_own():
    bench = (ROOT / "benchmarks" / "results" / "bench.md").read_text(encoding="utf-8")
    measured = bench.splitlines()[0]
    assert measured.startswith("Measured ") and " ".join(measured.split()) in " ".join(TEXT.split())
    theirs = {t.splitlines()[0]: t for t in tables(bench)}
    ours = [t for t in tables(TEXT) if t.splitlines()[0] in theirs]
    assert len(ours) == len(theirs) >= 4
    for table in ours:
        assert table == theirs[table.splitlines()[0]]


def layout() -> list[str]:
    """The paths the README's layout section names, relative to ``src/digitnet``: each
    module, each folder (ending in /) and the modules a folder's line lists."""
    section = TEXT.split("\n## How the code is laid out\n", 1)[1].split("\n## ", 1)[0]
    (tree,) = [body for _, body, _ in fenced(section, "") if body.startswith("src/digitnet/")]
    paths, folder = [], ""
    for line in tree.splitlines()[1:]:
        indent = len(line) - len(line.lstrip())
        head, _, rest = line.strip().partition("  ")
        if "," in head:  # notebook.py, sweep.py, static/ (the page), ...
            paths += re.findall(r"\w+\.py|\w+/", re.sub(r"\([^)]*\)", "", line))
        elif indent > 2:  # a module inside the folder above
            paths.append(folder + head)
        elif head.endswith("/"):
            folder = head
            paths += [head, *(head + name for name in re.findall(r"\w+\.py", rest))]
        else:
            paths.append(head)
    return paths


def layout_problems(package: Path, named: list[str]) -> list[str]:
    """What differs between the paths ``named`` and the package folder: every path
    named must exist, and every public module be named or sit in a folder named
    without a list of its modules (server/, cli/)."""
    problems = [f"{p} is listed but not in src/" for p in named if not (package / p).exists()]
    for module in sorted(package.rglob("*.py")):
        relative = module.relative_to(package).as_posix()
        if module.name.startswith("_") or relative in named:
            continue
        top = relative.split("/", 1)[0] + "/"
        listed = [p for p in named if p.startswith(top) and p != top]
        if "/" not in relative or top not in named or listed:
            problems.append(f"{relative} is in src/ but not listed")
    return problems


def test_the_layout_check_finds_a_missing_and_an_unlisted_module(tmp_path):
    """The check below, on a made-up package: it must see both kinds of difference."""
    for path in ("learn/network.py", "learn/extra.py", "server/app.py", "_private.py", "x.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    named = ["learn/", "learn/network.py", "learn/loop.py", "server/", "x.py"]
    assert layout_problems(tmp_path, named) == [
        "learn/loop.py is listed but not in src/",
        "learn/extra.py is in src/ but not listed",
    ]


def test_the_layout_section_matches_src():
    assert layout_problems(ROOT / "src" / "digitnet", layout()) == []
