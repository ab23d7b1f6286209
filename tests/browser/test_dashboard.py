"""The training dashboard in headless Chromium: finished, cancelled and failed runs,
versions, chart and schedules, and which actions it offers."""

import time

import pytest

from annotator.learning.services.schedules import schedule_training
from annotator.models import (
    ModelStatus,
    Promotion,
    PromotionKind,
    Role,
    RunState,
    RunTrigger,
    TrainingRun,
)
from tests.browser.conftest import document, model_version, watch_errors
from tests.factories import DatasetFactory, MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def run(dataset, state, iteration, **fields):
    losses = [{"iteration": i, "loss": 2.0 / (i + 1)} for i in range(iteration)]
    return TrainingRun.objects.create(dataset=dataset, state=state, trigger=RunTrigger.MANUAL, iteration=iteration,
                                      total_iterations=600, loss_history=losses, worker_host="gpu-1", **fields)


@pytest.fixture
def training(db):
    """A dataset with an admin and a radiologist, a daily schedule, one production version
    and its successful run."""
    dataset = DatasetFactory(name="knees")
    admin, reader = UserFactory(username="admin"), UserFactory(username="reader")
    MembershipFactory(dataset=dataset, user=admin, role=Role.ADMIN)
    MembershipFactory(dataset=dataset, user=reader, role=Role.RADIOLOGIST)
    schedule_training(dataset, cron="0 2 * * *")
    first = run(dataset, RunState.SUCCEEDED, 600)
    production = model_version(dataset, "frcnn-0001", ModelStatus.PRODUCTION, 0.42)
    production.training_run = first
    production.save()
    return {"dataset": dataset, "admin": admin, "reader": reader, "production": production}


def open_dashboard(context, live_server, dataset, patch=None):
    """The dashboard page once it has drawn twice; ``patch(state)`` edits the dashboard
    JSON on its way to the page. Returns the page and the list of its errors."""
    page = context.new_page()
    errors = watch_errors(page)
    if patch:
        def route(intercepted):
            answer = intercepted.fetch()
            intercepted.fulfill(response=answer, json=patch(answer.json()))
        page.route(f"**/api/datasets/{dataset.pk}/dashboard/", route)
    page.goto(f"{live_server.url}/datasets/{dataset.pk}/training/")
    deadline = time.monotonic() + 10
    # until a second refresh is drawn (the old failure came on every refresh) or an error
    while not errors and page.evaluate("() => Number(document.getElementById('dashboard').dataset.refreshed || 0)") < 2:
        assert time.monotonic() < deadline, "the dashboard did not refresh twice"
        page.wait_for_timeout(100)
    return page, errors


def cells(page, table):
    return page.locator(f"#{table} tbody tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.innerText))")


def assert_everything_drawn(page, errors, runs, versions):
    """No page error; the runs (their states), versions, chart and schedule are drawn."""
    assert errors == []
    assert [row[1].splitlines()[0] for row in cells(page, "runs")] == runs
    assert [row[0] for row in cells(page, "versions")] == versions
    assert page.locator("#metrics-chart circle").count() == 3 * len(versions)
    assert "0 2 * * *" in page.inner_text("#schedules")


def action(page, name):
    """Whether the dashboard's ``name`` button is enabled, and its tooltip."""
    return page.locator(f"#{name}").evaluate("b => [!b.disabled, b.title]")


def test_a_cancelled_run_leaves_the_dashboard_whole(login, live_server, training):
    dataset = training["dataset"]
    run(dataset, RunState.CANCELLED, 152, cancel_requested=True, error="cancelled by an admin",
        base_version=training["production"])
    page, errors = open_dashboard(login(training["admin"]), live_server, dataset)
    assert_everything_drawn(page, errors, ["cancelled (cancelling)", "succeeded"], ["frcnn-0001"])
    cancelled = page.locator("#runs tbody tr").first
    assert cancelled.get_attribute("data-state") == "cancelled"
    assert "152/600" in cancelled.inner_text()
    assert cancelled.locator("svg.spark polyline").count() == 1
    assert page.locator("#versions tbody tr").first.get_attribute("data-status") == "production"
    document(page, "dashboard-cancelled-run")


def test_a_failed_run_shows_its_error_and_the_rest_of_the_dashboard(login, live_server, training):
    dataset = training["dataset"]
    earlier = model_version(dataset, "frcnn-0000", ModelStatus.ARCHIVED, 0.30)
    Promotion.objects.create(dataset=dataset, model_version=training["production"], previous_version=earlier,
                             serial=1, kind=PromotionKind.MANUAL)
    run(dataset, RunState.FAILED, 37, error="CUDA out of memory\nTraceback ...")
    page, errors = open_dashboard(login(training["admin"]), live_server, dataset)
    assert_everything_drawn(page, errors, ["failed", "succeeded"], ["frcnn-0000", "frcnn-0001"])
    failed = page.locator("#runs tbody tr").first
    failed.locator("summary").click()
    assert "CUDA out of memory" in failed.locator("pre").inner_text()
    assert action(page, "rollback") == [True, ""]  # frcnn-0000 was in production before


def test_with_no_earlier_version_roll_back_is_disabled_and_says_why(login, live_server, training):
    page, errors = open_dashboard(login(training["admin"]), live_server, training["dataset"])
    assert action(page, "train-now") == [True, ""]
    assert action(page, "rollback") == [False, "There is no earlier production version to roll back to"]
    assert page.locator("#rollback").evaluate("b => getComputedStyle(b).opacity") == "0.4"
    assert errors == []


def test_while_a_run_goes_train_now_is_disabled_and_the_time_left_shows(login, live_server, training):
    dataset = training["dataset"]
    run(dataset, RunState.RUNNING, 150, base_version=training["production"])

    def with_estimate(state):
        state["runs"][0]["eta_seconds"] = 250
        return state

    page, errors = open_dashboard(login(training["admin"]), live_server, dataset, patch=with_estimate)
    assert action(page, "train-now") == [False, "A run is already queued or running"]
    running = page.locator("#runs tbody tr").first
    assert running.locator(".eta").inner_text() == "about 4 min left"
    assert running.locator("button", has_text="Cancel").is_enabled()
    assert errors == []


def test_a_finished_run_shows_why_it_stopped(login, live_server, training):
    dataset = training["dataset"]
    run(dataset, RunState.SUCCEEDED, 152, base_version=training["production"])

    def with_reason(state):
        state["runs"][0].update(stop_reason="time limit (1800 s) reached", eta_seconds=None)
        return state

    page, errors = open_dashboard(login(training["admin"]), live_server, dataset, patch=with_reason)
    stopped = page.locator("#runs tbody tr").first
    assert stopped.locator(".stop-reason").inner_text() == "time limit (1800 s) reached"
    assert stopped.locator(".eta").count() == 0
    assert page.locator("#runs .stop-reason").count() == 1  # the JSON of the other run has none
    assert errors == []


def test_a_radiologist_sees_the_dashboard_with_every_action_disabled(login, live_server, training):
    dataset = training["dataset"]
    model_version(dataset, "frcnn-0000", ModelStatus.ARCHIVED, 0.30)
    run(dataset, RunState.QUEUED, 0)
    page, errors = open_dashboard(login(training["reader"]), live_server, dataset)
    only_admins = "Only admins of this dataset can do this"
    assert action(page, "train-now") == [False, only_admins]
    assert action(page, "rollback") == [False, only_admins]
    assert page.locator("#runs button, #versions button").count() == 0  # no Cancel, no Promote
    assert errors == []
