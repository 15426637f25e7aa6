"""``blt generate --prompts FILE``: JSON Lines in, JSON Lines out, batched, one-line errors (issue 15)."""

from __future__ import annotations

import json

import pytest

from blt.generate import generate, load_generator
from test_generate_inputs import export

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = ["hello", "a b", "x", "the cat sat", "hello"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, registry):
    return export(tmp_path_factory.mktemp("gen_cli"), registry, {"kind": "space"}, seq_len=32)


def write_prompts(path, prompts):
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
    return path


def test_prompts_file_to_json_lines(tmp_path, run_dir, capsysbinary):
    from blt.cli.main import main

    loaded = load_generator(run_dir)
    src = write_prompts(tmp_path / "prompts.jsonl", PROMPTS)
    expected = generate(loaded.model, loaded.patcher, PROMPTS, max_new_bytes=10)
    assert main(["generate", str(run_dir), "--prompts", str(src), "--max-bytes", "10", "--batch-size", "2"]) == 0
    records = [json.loads(line) for line in capsysbinary.readouterr().out.decode().splitlines()]
    assert [r["prompt"] for r in records] == PROMPTS
    assert [r["output"].encode() if "output_hex" not in r else bytes.fromhex(r["output_hex"]) for r in records] == expected
    assert all(r["stop"] in ("eos", "length") and r["new_bytes"] == len(e) for r, e in zip(records, expected))
    out = tmp_path / "out.jsonl"
    sampled = ["--temperature", "1.0", "--seed", "4", "--max-bytes", "6", "--out", str(out)]
    assert main(["generate", str(run_dir), "--prompts", str(src), "--batch-size", "2", *sampled]) == 0
    small_batches = out.read_text()
    assert main(["generate", str(run_dir), "--prompts", str(src), "--batch-size", "8", *sampled]) == 0
    assert out.read_text() == small_batches  # prompt i samples from stream (seed, i) whatever the batching
    assert capsysbinary.readouterr().out == b""


def test_greedy_prompts_are_batched_by_length(tmp_path, run_dir, capsysbinary, monkeypatch):
    """Greedy rows are independent of their batch-mates, so prompts of similar length are batched
    together (rows advance in lockstep); sampled prompts keep the file's order (stream (seed, i))."""
    import blt.generate
    from blt.cli.main import main

    prompts = ["a", "a much longer prompt", "bb", "another long prompt", "ccc"]
    loaded = load_generator(run_dir)
    alone = [generate(loaded.model, loaded.patcher, [p], max_new_bytes=8)[0] for p in prompts]
    batches, real = [], blt.generate.generate_detailed

    def recording(model, patcher, chunk, **kw):
        batches.append((list(chunk), kw["row_offset"]))
        return real(model, patcher, chunk, **kw)

    monkeypatch.setattr(blt.generate, "generate_detailed", recording)
    src = write_prompts(tmp_path / "prompts.jsonl", prompts)
    assert main(["generate", str(run_dir), "--prompts", str(src), "--max-bytes", "8", "--batch-size", "2"]) == 0
    records = [json.loads(line) for line in capsysbinary.readouterr().out.decode().splitlines()]
    assert [r["prompt"] for r in records] == prompts
    assert [r["output"].encode() if "output_hex" not in r else bytes.fromhex(r["output_hex"]) for r in records] == alone
    assert [chunk for chunk, _ in batches] == [["a much longer prompt", "another long prompt"], ["ccc", "bb"], ["a"]]
    batches.clear()
    assert main(["generate", str(run_dir), "--prompts", str(src), "--max-bytes", "4", "--batch-size", "2",
                 "--temperature", "1.0", "--seed", "1"]) == 0
    assert batches == [(prompts[0:2], 0), (prompts[2:4], 2), (prompts[4:], 4)]


@pytest.mark.parametrize("lines, message", [
    (['"ok"', "{not json"], "line 2: not valid JSON"),
    (['"ok"', "", "3"], "line 3: expected a JSON string, got int"),
    (['"ok"', '""'], "line 2: the prompt is empty"),
    ([""], "no prompts"),
])
def test_bad_prompts_file_is_one_line_and_writes_nothing(tmp_path, run_dir, capsysbinary, lines, message):
    from blt.cli.main import main

    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["generate", str(run_dir), "--prompts", str(src), "--out", str(out)]) == 2
    err = capsysbinary.readouterr().err
    assert message.encode() in err and err.strip().count(b"\n") == 0
    assert not out.exists()


def test_prompt_and_prompts_are_exclusive(tmp_path, run_dir, capsysbinary):
    from blt.cli.main import main

    src = write_prompts(tmp_path / "p.jsonl", ["a"])
    with pytest.raises(SystemExit) as info:  # argparse: usage and one error line
        main(["generate", str(run_dir), "--prompt", "a", "--prompts", str(src)])
    assert info.value.code == 2
    assert main(["generate", str(run_dir), "--prompt", "a", "--out", str(tmp_path / "o")]) == 2
    assert b"--out needs --prompts" in capsysbinary.readouterr().err


def test_speculative_flag(tmp_path, run_dir, capsysbinary):
    """--speculative K prints the same greedy bytes, its counts on stderr and in the JSON Lines."""
    from blt.cli.main import main

    args = ["generate", str(run_dir), "--prompt", "the cat", "--prompt", "a b", "--max-bytes", "24", "--no-eos-stop"]
    for stream in ("--stream", "--no-stream"):
        assert main([*args, stream]) == 0
        plain = capsysbinary.readouterr()
        assert main([*args, stream, "--speculative", "4"]) == 0
        spec = capsysbinary.readouterr()
        assert spec.out == plain.out and b"speculative:" not in plain.err
        assert spec.err.count(b"\n") == 1 and b"global-model calls per generated byte" in spec.err
    src = write_prompts(tmp_path / "p.jsonl", ["the cat", "a b"])
    assert main(["generate", str(run_dir), "--prompts", str(src), "--max-bytes", "8", "--no-eos-stop", "--speculative", "3"]) == 0
    records = [json.loads(line) for line in capsysbinary.readouterr().out.decode().splitlines()]
    assert all(r["speculation"]["tokens"] == 8 and "acceptance" in r["speculation"] for r in records)
    for bad, message in ((["--speculative", "0"], b"--speculative must be >= 1"),
                         (["--speculative", "2", "--no-cache"], b"--speculative works on the cache")):
        assert main([*args, *bad]) == 2
        err = capsysbinary.readouterr().err
        assert message in err and err.strip().count(b"\n") == 0
