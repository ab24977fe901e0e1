"""The docs test's reading of Markdown: which blocks are examples, what they promise, and that a wrong line fails."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from shell_examples import examples, line_pattern, missing_lines

DOC = """\
# A page

```
odin run DIR [--watch]
```

```
$ odin data nope-12345678
error: no run 'nope-12345678'
$ odin run samples/retry --run-id retry-5hd8w0zq
16:22:04 run retry-5hd8w0zq BUILDING: submitted samples/retry
...
run retry-5hd8w0zq TERMINATED after 1.0s: task 'slow' failed
$ echo $?
1
```

<!-- docs-test: skip (needs a cluster) -->
```sh
odin --executor kubernetes run samples/hello
```

<!-- docs-test: only "make demo" (the rest is the test suite) -->
```bash
make demo   # runs a sample
make test
```

<!-- docs-test: server -->
```console
$ odin --server ws://127.0.0.1:30000 status
```

```yaml
$ not: a shell example
```
"""


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "page.md"
    path.write_text(textwrap.dedent(DOC))
    return path


def test_blocks_markers_and_exit_codes(page: Path) -> None:
    found = examples(page)
    assert [e.line for e in found] == [7, 19, 24, 30]  # the syntax block and the yaml block are not examples
    errors, retry = found[0].commands
    assert (errors.text, errors.exit_code) == ("odin data nope-12345678", None)  # shows an error: any non-zero
    assert (retry.exit_code, retry.shown[-1]) == (1, "run retry-5hd8w0zq TERMINATED after 1.0s: task 'slow' failed")
    assert found[1].skip == "needs a cluster"
    assert [c.text for c in found[2].commands] == ["make demo   # runs a sample"]
    assert found[3].server and found[3].commands[0].text.startswith("odin --server ws://127.0.0.1:30000")


def test_what_varies_is_allowed_to() -> None:
    pattern = line_pattern("ml-sweep-q2w8e4r1  DONE        7/7    42s ago  32.6s")
    assert pattern is not None
    assert pattern.match("ml-sweep-x8c0aa9z  DONE  7/7  3m ago  3m04s")
    assert not pattern.match("ml-sweep-x8c0aa9z  TERMINATED  7/7  3m ago  3m04s")
    path = line_pattern("  report_path    /home/me/.odin/data/x/report.md")
    assert path is not None and path.match("report_path /tmp/pytest-1/docs-home/data/x/report.md")
    assert line_pattern("...") is None


def test_a_line_the_command_does_not_print_is_missing() -> None:
    shown = ("hello: valid (1 task)", "...", "retry: valid (3 tasks)")
    assert missing_lines(shown, "hello: valid (1 task)\nx\nretry: valid (3 tasks)\n") == []
    assert missing_lines(shown, "hello: valid (1 task)\nretry: invalid\n") == ["retry: valid (3 tasks)"]
    assert missing_lines(("b", "a"), "a\nb\n") == ["a"]  # in order
    assert missing_lines(("main.yml:6:12: unknown variable ...",), "main.yml:6:12: unknown variable '$X'") == []
