"""Reading task logs a chunk at a time: the last lines found from the end, every line once across chunks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from odin_core.executors.local_files import READ_CHUNK, file_lines, tail_offset


def lines_of(path: Path, offset: int = 0) -> list[str]:
    async def read() -> list[str]:
        return [line async for line in file_lines(path, offset)]

    return asyncio.run(read())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "one\n",
        "one",
        "a\nb\nc\n",
        "a\nb\nc",
        "\n\n\n",
        "a\r\nb\rc\n",  # only "\n" ends a line (as `logs -f` has always read them)
        "é€😀\n\xff\n",
    ],
)
@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_the_last_lines_start_where_the_whole_file_s_last_lines_start(tmp_path: Path, text: str, n: int) -> None:
    path = tmp_path / "t.log"
    path.write_bytes(text.encode(errors="surrogateescape"))
    whole = lines_of(path)
    assert lines_of(path, tail_offset(path, n)) == whole[-n:]


def test_a_log_longer_than_a_chunk_is_read_whole_and_its_end_found_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    lines = [f"{i} " + "x" * (i % 3000) for i in range(4000)]  # 5 MB, lines cut by every chunk boundary
    path.write_text("".join(f"{line}\n" for line in lines))
    assert path.stat().st_size > 4 * READ_CHUNK
    assert lines_of(path) == lines
    assert lines_of(path, tail_offset(path, 25)) == lines[-25:]
    assert tail_offset(path, 10**6) == 0


def test_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert tail_offset(tmp_path / "none.log", 5) == 0
    assert lines_of(tmp_path / "none.log") == []
