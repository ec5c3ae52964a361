"""`mesbridge test`: run the YAML test cases of a config root."""

from __future__ import annotations

import asyncio
from pathlib import Path
from xml.etree import ElementTree

import click

from engine.commands._common import load_or_exit, root_argument
from engine.redaction import environment_redactor
from engine.testing.runner import CaseResult, run_all


@click.command("test")
@root_argument
@click.option("-k", "keyword", help="Only cases whose name or pipeline contains this")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report")
@click.option("-v", "--verbose", is_flag=True, help="List every case, not only failures")
def test(root: Path, keyword: str | None, junit: Path | None, verbose: bool) -> None:
    """Run the test cases in ROOT/mappings. Exit 1 when one fails."""
    project = load_or_exit(root)
    results = asyncio.run(run_all(project, keyword))
    redactor = environment_redactor()  # after the run: it knows the secrets the cases' templates read
    for result in results:
        result.failures = [redactor.redact(failure) for failure in result.failures]
    for result in results:
        if result.passed:
            if verbose:
                click.echo(f"PASS {result.title}")
            continue
        click.secho(f"FAIL {result.title}", fg="red", bold=True)
        for failure in result.failures:
            click.echo("  " + failure.replace("\n", "\n  "))
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    untested = sorted(set(project.pipelines) - {entry.case.pipeline for entry in project.tests})
    if untested:
        click.echo(f"pipelines without a test case: {', '.join(untested)}")
    if junit is not None:
        _write_junit(junit, results)
    click.echo(f"{passed} passed, {failed} failed")
    if not results and keyword:
        click.echo(f"no test case matches -k {keyword!r}: nothing was tested", err=True)
        raise SystemExit(1)
    if not results:
        click.echo("no test cases found")
    raise SystemExit(1 if failed else 0)


def _write_junit(path: Path, results: list[CaseResult]) -> None:
    suite = ElementTree.Element(
        "testsuite",
        name="mesbridge",
        tests=str(len(results)),
        failures=str(sum(not r.passed for r in results)),
    )
    for result in results:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=result.entry.source.file,
            name=result.entry.case.name,
            time=f"{result.duration:.4f}",
        )
        if not result.passed:
            failure = ElementTree.SubElement(case, "failure", message=result.failures[0].splitlines()[0])
            failure.text = "\n".join(result.failures)
    ElementTree.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
