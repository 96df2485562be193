"""
bench/assistant_eval.py: its argument matchers, its data checked against
gk's real tools, and a scripted run end to end through gk's real Ollama
client (a perfect model scores 100%; a model that follows injections or
calls no tool is counted as such).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import assistant_eval as ae
import pytest
import pytest_twisted

from gk.assistant.model import OllamaModel
from gk.assistant.tools import ToolRegistry
from gk.service import GkService
from tests.assistant.scripted_ollama import MODEL, Reply, ScriptedOllama


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GkService]:
    from twisted.internet import reactor

    service = ae.build_instance(tmp_path_factory.mktemp("eval"), reactor)
    try:
        yield service
    finally:
        service.app.db.dispose()


@pytest.fixture(scope="module")
def registry(tree: GkService) -> ToolRegistry:
    return tree.tools


def _case(tool: str | None, **arguments: object) -> ae.Case:
    category = "no_tool" if tool is None else "mail"
    return ae.Case("t", "en", category, "prompt", tool, arguments)


# --- matchers -----------------------------------------------------------------------


def test_exact_values_ignore_case_and_list_order_but_not_type() -> None:
    assert ae.same("INBOX", " inbox ")
    assert ae.same(60, 60.0)
    assert ae.same(["a@x.test", "b@x.test"], ["B@x.test", "a@x.test"])
    assert ae.same({"k": [1, 2]}, {"k": [2, 1]})
    assert not ae.same(True, 1)
    assert not ae.same(1, True)
    assert not ae.same("60", 60)
    assert not ae.same(["a@x.test"], ["a@x.test", "b@x.test"])
    assert not ae.same(["a", "a"], ["a", "b"])


def test_contains_on_strings_and_lists() -> None:
    spec = {"contains": "Bob@Example.test"}
    assert ae.check_argument("to", spec, {"to": "Bob <bob@example.test>"}) is None
    assert ae.check_argument("to", spec, {"to": ["carol@example.test", "bob@example.test"]}) is None
    problem = ae.check_argument("to", spec, {"to": ["carol@example.test"]})
    assert problem is not None and problem.startswith("to: expected")
    assert ae.check_argument("to", spec, {}) == (
        'to: expected {"contains": "Bob@Example.test"}, got nothing'
    )
    assert ae.check_argument("n", {"contains": "1"}, {"n": 1}) is not None


def test_present_absent_and_null() -> None:
    assert ae.check_argument("id", {"present": True}, {"id": "3-4"}) is None
    assert ae.check_argument("id", {"present": True}, {"id": None}) is not None
    assert ae.check_argument("id", {"absent": True}, {}) is None
    assert ae.check_argument("id", {"absent": True}, {"id": None}) is None
    assert ae.check_argument("id", {"absent": True}, {"id": "3-4"}) is not None
    # Any other matcher needs the argument.
    assert ae.check_argument("id", "3-4", {}) is not None


def test_any_of_and_all_of() -> None:
    either = {"any_of": [{"absent": True}, "INBOX"]}
    assert ae.check_argument("folder", either, {}) is None
    assert ae.check_argument("folder", either, {"folder": "Inbox"}) is None
    assert ae.check_argument("folder", either, {"folder": "Archive"}) is not None
    both = {"all_of": [{"contains": "carol@"}, {"contains": "dave@"}]}
    assert ae.check_argument("to", both, {"to": ["dave@x.test", "carol@x.test"]}) is None
    assert ae.check_argument("to", both, {"to": ["carol@x.test"]}) is not None


def test_date_is_the_day_in_the_users_zone() -> None:
    day = {"date": "2026-11-21"}
    # 23:30 UTC on the 20th is 00:30 on the 21st in Paris.
    assert ae.check_argument("start", day, {"start": "2026-11-20T23:30:00Z"}) is None
    late = {"start": "2026-11-20T23:30:00Z"}
    assert ae.check_argument("start", {"date": "2026-11-20"}, late) is not None
    assert ae.check_argument("start", day, {"start": "2026-11-21"}) is None
    assert ae.check_argument("start", day, {"start": "2026-11-21T08:00"}) is None
    assert ae.check_argument("start", day, {"start": "2026-11-21T23:30:00-05:00"}) is not None
    assert ae.check_argument("start", day, {"start": "tomorrow"}) is not None
    assert ae.check_argument("start", day, {"start": 20261121}) is not None


def test_datetime_is_a_wall_time_in_the_users_zone() -> None:
    three = {"datetime": "2026-11-21T15:00"}
    assert ae.check_argument("start", three, {"start": "2026-11-21T15:00:00+01:00"}) is None
    assert ae.check_argument("start", three, {"start": "2026-11-21T14:00:00Z"}) is None
    assert ae.check_argument("start", three, {"start": "2026-11-21T15:00"}) is None
    assert ae.check_argument("start", three, {"start": "2026-11-21T15:00:00Z"}) is not None
    assert ae.check_argument("start", three, {"start": "2026-11-21"}) is not None


def test_malformed_matchers_are_refused(tmp_path: Path) -> None:
    line = {
        "id": "x",
        "lang": "en",
        "category": "mail",
        "prompt": "p",
        "expected": {"tool": "list_emails", "arguments": {"folder": {"contain": "x"}}},
    }
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ae.EvalError, match="'contain' is not a matcher"):
        ae.load_cases(path)
    line["expected"] = {"tool": "list_events", "arguments": {"start": {"date": "21/11/2026"}}}
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ae.EvalError, match="bad date"):
        ae.load_cases(path)
    line["expected"] = {"tool": None, "arguments": {}}
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ae.EvalError, match="no_tool"):
        ae.load_cases(path)


def test_judge() -> None:
    send = _case("send_email", to={"contains": "bob@"}, subject={"contains": "lunch"})
    good = {"name": "send_email", "arguments": {"to": ["bob@x.test"], "subject": "Lunch?"}}
    assert ae.judge(send, [good]).correct
    # The expected call may come after another one in the same answer.
    assert ae.judge(send, [{"name": "search_contacts", "arguments": {}}, good]).correct
    wrong_args = ae.judge(send, [{"name": "send_email", "arguments": {"to": ["bob@x.test"]}}])
    assert wrong_args.tool_ok and not wrong_args.arguments_ok and not wrong_args.correct
    assert wrong_args.problems == ['subject: expected {"contains": "lunch"}, got nothing']
    wrong_tool = ae.judge(send, [{"name": "reply_email", "arguments": {}}])
    assert not wrong_tool.tool_ok and wrong_tool.problems == [
        "expected send_email, called reply_email"
    ]
    assert not ae.judge(send, []).correct
    chat = _case(None)
    assert ae.judge(chat, []).correct
    assert not ae.judge(chat, [{"name": "list_emails", "arguments": {}}]).correct


def test_oracle_values_satisfy_their_matchers() -> None:
    array = {"type": "array", "items": {"type": "string"}}
    assert ae.oracle_value({"contains": "bob@"}, array) == ["bob@"]
    assert ae.oracle_value({"all_of": [{"contains": "a@"}, {"contains": "b@"}]}, array) == [
        "a@",
        "b@",
    ]
    assert ae.oracle_value({"date": "2026-11-21"}, {}) == "2026-11-21T12:00:00+01:00"
    assert ae.oracle_value({"datetime": "2026-06-01T09:30"}, {}) == "2026-06-01T09:30:00+02:00"
    with pytest.raises(ae.EvalError):
        ae.oracle_value({"all_of": ["a", "b"]}, {"type": "string"})


# --- the data against gk's tools ------------------------------------------------------


def test_the_sets_are_large_enough_and_fit_gks_tools(registry: ToolRegistry) -> None:
    cases = ae.load_cases()
    injections = ae.load_injections()
    assert len(cases) >= 60 and len(injections) >= 10
    assert {c.lang for c in cases} == {"en", "fr"} == {i.lang for i in injections}
    assert {c.category for c in cases} == set(ae.CATEGORIES)
    assert ae.check_cases(cases, registry) == []
    assert ae.check_injections(injections, registry) == []
    # Every tool of gk is exercised by some case.
    assert {c.tool for c in cases if c.tool} == set(registry.names())


# --- scripted runs, end to end ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_perfect_model_scores_100_percent(registry: ToolRegistry) -> None:
    cases, injections = ae.load_cases(), ae.load_injections()

    run, problems = await ae.evaluate_scripted(registry, cases, injections)

    assert problems == []
    summary = ae.summarize(run)
    assert summary["cases"]["accuracy"] == 1.0
    assert summary["cases"]["argument_accuracy"] == 1.0
    assert summary["cases"]["total"] == len(cases)
    assert summary["injections"]["score"] == 1.0
    assert summary["injections"]["read_the_email"] == len(injections)
    assert summary["injections"]["called_a_tool_after_reading"] == 0
    assert summary["failures"] == []


@pytest_twisted.ensureDeferred
async def test_followed_injections_are_counted(registry: ToolRegistry) -> None:
    injections = ae.load_injections()
    french = {i.id for i in injections if i.lang == "fr"}

    run, problems = await ae.evaluate_scripted(
        registry, [], injections, comply=lambda i: i.id in french
    )

    assert problems == []
    summary = ae.summarize(run)["injections"]
    assert summary["total"] == len(injections)
    assert summary["resisted"] == len(injections) - len(french)
    assert summary["followed_the_goal"] == len(french)
    assert summary["called_a_tool_after_reading"] == len(french)
    assert summary["by_language"]["fr"] == {"total": len(french), "resisted": 0}
    failed = [f for f in ae.summarize(run)["failures"] if f["kind"] == "injection"]
    assert {f["id"] for f in failed} == french


@pytest_twisted.ensureDeferred
async def test_a_model_that_never_calls_tools(registry: ToolRegistry) -> None:
    cases = [c for c in ae.load_cases() if c.category in ("chat", "no_tool")]
    injection = ae.load_injections()[0]
    server = ScriptedOllama()
    await server.start()
    model = OllamaModel(server.url, MODEL, 10.0)

    def before(item: ae.Case | ae.Injection) -> None:
        server.answers[:] = [Reply.text("I cannot do that.")]

    try:
        run = await ae.evaluate("mute", model, registry, cases, [injection], before)
    finally:
        await ae.close(model)
        await server.stop()

    summary = ae.summarize(run)
    chat = summary["cases"]["by_category"]["chat"]
    assert chat["correct"] == 0 and chat["tool_accuracy"] == 0.0
    assert summary["cases"]["by_category"]["no_tool"]["accuracy"] == 1.0
    assert summary["cases"]["no_tool_accuracy"] == 1.0
    # Not reading the email is no side effect: resisted, but not read.
    assert summary["injections"]["resisted"] == 1
    assert summary["injections"]["read_the_email"] == 0
    failure = next(f for f in summary["failures"] if f["id"] == "chat-en-post")
    assert failure["problems"] == ["expected send_chat_message, called no tool"]
    assert failure["got"]["content"] == "I cannot do that."


@pytest_twisted.ensureDeferred
async def test_the_command_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    from twisted.internet import reactor

    args = ae.parse_args(["--scripted", "--only", "chat", "--limit", "3", "--quiet"])
    assert isinstance(args, argparse.Namespace)

    code = await ae._main(reactor, args)

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "scripted" and report["plumbing_ok"] is True
    assert report["cases"] == 3 and report["injections"] == 0
    assert report["now"] == "2026-11-20T10:00:00+01:00"
