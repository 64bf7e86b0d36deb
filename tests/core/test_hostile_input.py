"""Bad and hostile input: one clear line naming the file, field and value, exit code 2, no
traceback, nothing recorded. Each case is a defect found by trying to break the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BASE = """name: t
participants: {include: [KEN, UGA]}
lots:
  - {id: L1, product: CoronaVac, doses: 100000, available: 2021-08-30, expiry: 2022-02-28}
"""
BOMB = BASE + "policy:\n  name: covax-pro-rata\n  options:\n    a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"    {b}: &{b} [{', '.join(['*' + a] * 10)}]\n" for a, b in zip("abcdef", "bcdefg", strict=True))

TEXT_CASES = {
    "doses_true_is_not_one_dose": (BASE.replace("doses: 100000", "doses: true"), "lots[0].doses"),
    "doses_beyond_64_bits": (BASE.replace("doses: 100000", "doses: 9223372036854775807"), "lots[0].doses"),
    "population_1e300": (BASE.replace("[KEN, UGA]}", "[KEN, UGA], overrides: {KEN: {population: 1.0e+300}}}"),
                         "population"),
    "population_infinite": (BASE.replace("[KEN, UGA]}", "[KEN, UGA], overrides: {KEN: {population: .inf}}}"),
                            "finite"),
    "duplicate_key": (BASE + "name: again\n", "duplicate key 'name'"),
    "id_with_colon": (BASE.replace("id: L1", "id: 'L:1'"), "lots[0].id"),
    "yaml_alias_bomb": (BOMB, "aliases are expanded"),
    "deeply_nested": (BASE + "description: " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
    "megabyte_name": (BASE.replace("name: t", "name: " + "x" * 1_000_000), "at most 200 characters"),
    "misspelt_policy_parameter": (BASE + "policy: {name: optimal, equity_flor: 0.5}\n", "policy.equity_flor"),
    "unknown_policy": (BASE + "policy: {name: optimall}\n", "policy"),
}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dosewise.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stderr.startswith("error:"), proc.stderr[:500]
    assert len(proc.stderr) < 4000, "the error message must stay short whatever the input"
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr[:1000])


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_bad_scenario_is_one_clear_error_and_records_nothing(case: str, tmp_path: Path) -> None:
    text, needle = TEXT_CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text, encoding="utf-8")
    assert_clean_error(run("round", "open", str(path), "--db", "l.db", cwd=tmp_path), path.name, needle)
    assert not (tmp_path / "l.db").exists() or run("round", "list", "--db", "l.db", cwd=tmp_path).stdout == ""


@pytest.mark.parametrize(("name", "data", "needle"), [
    ("latin1.yaml", BASE.replace("name: t", "name: Bogotá").encode("latin-1"), "not UTF-8"),
    ("binary.yaml", bytes(range(256)) * 4, "not UTF-8"),
    ("nul.yaml", BASE.encode() + b"\x00\n", "NUL"),
])
def test_binary_or_latin1_scenario_in_round_open(name: str, data: bytes, needle: str, tmp_path: Path) -> None:
    (tmp_path / name).write_bytes(data)
    assert_clean_error(run("round", "open", name, "--db", "l.db", cwd=tmp_path), name, needle)


def test_database_urls_never_show_a_password_and_never_trace(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(BASE)
    proc = run("round", "open", "s.yaml", "--db", "mysql://user:secret@host/db", cwd=tmp_path)
    assert_clean_error(proc, "SQLite and PostgreSQL")
    assert "secret" not in proc.stderr
    proc = run("round", "open", "s.yaml", "--db", "postgresql://u:topsecret@[::1/x", cwd=tmp_path)
    assert_clean_error(proc, "not a database URL")
    assert "topsecret" not in proc.stderr


def test_round_open_into_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(BASE)
    assert_clean_error(run("round", "open", "s.yaml", "--db", str(tmp_path / "nope" / "x.db"), cwd=tmp_path),
                       "does not exist")
    assert not (tmp_path / "nope").exists()


def test_edited_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    import sqlite3

    (tmp_path / "s.yaml").write_text(BASE)
    assert run("round", "open", "s.yaml", "--db", "l.db", cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "l.db") as conn:
        conn.execute("UPDATE dosewise_ledger_version SET version_num = 'zzz'")
    assert_clean_error(run("round", "list", "--db", "l.db", cwd=tmp_path), "schema version 'zzz'")


def test_advance_to_the_far_future_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(BASE)
    assert run("round", "open", "s.yaml", "--db", "l.db", "--id", "R1", cwd=tmp_path).returncode == 0
    assert_clean_error(run("round", "advance", "R1", "--to", "9999-12-31", "--db", "l.db", cwd=tmp_path),
                       "--to", "9999-12-31")


@pytest.mark.parametrize(("args", "needle"), [
    (("--r0", "-1"), "--r0"), (("--r0", "nan"), "--r0"), (("--days", "0"), "--days"), (("--days", "5000"), "--days"),
    (("--plot", "x.gif"), "--plot"), (("--out", "x.xlsx"), "--out"),
])
def test_compare_refuses_impossible_settings_before_any_work(args: tuple[str, ...], needle: str,
                                                               tmp_path: Path) -> None:
    assert_clean_error(run("compare", "--demo", *args, cwd=tmp_path), needle)


def test_markup_and_control_characters_from_one_party_do_not_break_anothers_screen(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(BASE)
    assert run("round", "open", "s.yaml", "--db", "l.db", "--id", "R1", cwd=tmp_path).returncode == 0
    hostile = "[bold]not bold[/] [/] [link=http://x]x \x1b[31mred\x1b[0m \u202eevil"
    proc = run("round", "respond", "R1:L1:KEN:0", "--decline", "other", "--note", hostile, "--wish", "[/]",
               "--db", "l.db", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for args in (("round", "offers", "R1"), ("ledger", "log"), ("round", "status", "R1")):
        out = run(*args, "--db", "l.db", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "\x1b" not in out.stdout and "\u202e" not in out.stdout
    offers = run("round", "offers", "R1", "--db", "l.db", cwd=tmp_path).stdout
    assert "[bold]not" in offers and "\\x1b" in offers  # shown as text, not obeyed


def test_version_and_completion() -> None:
    proc = subprocess.run([sys.executable, "-m", "dosewise.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("dosewise ")
    helptext = subprocess.run([sys.executable, "-m", "dosewise.cli", "--help"], capture_output=True, text=True).stdout
    assert "--install-completion" in helptext
