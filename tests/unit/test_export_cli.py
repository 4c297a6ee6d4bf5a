"""`distill export` parses its flags into ExportOptions and nothing more (click's CliRunner)."""

from click.testing import CliRunner

from streams.cli import data, main
from streams.commands.export import ExportOptions


def invoke(monkeypatch, tmp_path, *flags: str):
    calls = []

    async def fake_export(settings, out, kinds, options):
        calls.append((out, kinds, options))
        return {"files": {"sft/samples.jsonl": {"count": 3}}, "card": {"path": "README.md"}}

    monkeypatch.setattr(data, "export", fake_export)
    result = CliRunner().invoke(main, ["export", "--out", str(tmp_path / "out"), *flags])
    return result, calls


def test_no_flags_ask_for_the_default_files(monkeypatch, tmp_path):
    result, calls = invoke(monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "out", ["rag", "sft", "preference", "quarantine"], ExportOptions())]
    assert ExportOptions() == ExportOptions(file_format="jsonl", preference_format="plain", openai=False, card=True)


def test_flags_become_export_options(monkeypatch, tmp_path):
    result, calls = invoke(monkeypatch, tmp_path, "--kind", "preference", "--format", "both",
                           "--preference-format", "trl", "--openai", "--no-card")
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "out", ["preference"], ExportOptions("both", "trl", True, False))]


def test_unknown_formats_are_refused(monkeypatch, tmp_path):
    for flags in (("--format", "csv"), ("--preference-format", "openai")):
        result, calls = invoke(monkeypatch, tmp_path, *flags)
        assert result.exit_code == 2 and not calls


def test_help_explains_each_flag():
    text = CliRunner().invoke(main, ["export", "--help"]).output
    for words in ("--format [jsonl|parquet|both]", "--preference-format [plain|trl|both]", "--openai",
                  "--no-card", "preference_trl/chosen_rejected", "openai/preference.jsonl", "source_record"):
        assert words in text, words
