"""The README's commands and CI stay in step."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```")[1]
    return [line.strip() for line in block.strip().splitlines()]


def test_readme_starts_with_setup_and_test_and_main_job():
    setup, test, main_job = readme_commands()[:3]
    assert setup == "./setup.sh"
    assert test.startswith(".venv/bin/")
    assert main_job.startswith(".venv/bin/voice-device ")


def test_ci_runs_setup_then_exactly_the_readme_test_command():
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    setup, test = readme_commands()[:2]
    assert lines[-2:] == [setup, test]
