"""A class in real browsers on ``digitnet serve --class``: the Join dialog shows the
addresses students can open and a QR code; "Copy link" on the teacher's localhost
page copies an address others can open; two browsers' trainings queue, each showing
its place and its own Stop; the teacher's page switches training off."""

import re

import pytest
from pagetools import DIGITS, page_at, stroke
from playwright.sync_api import expect

from conftest import start_server, stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def room(trained):
    """The served class: (the page's localhost address, the students' one, the
    teacher's link)."""
    process, port, line = start_server(trained[1], "--class")
    printed = [line]
    while "Teacher" not in printed[-1]:
        printed.append(process.stdout.readline())
    students = re.search(r"http://\S+/", line)[0]
    teacher = re.search(r"http://\S+/teacher\?key=\S+", printed[-1])[0]
    yield f"http://127.0.0.1:{port}/", students, teacher
    stop(process)


def test_join_dialog_and_copy_link_give_the_class_address(browser, room):
    local, students, _ = room
    assert "0.0.0.0" not in students and "127.0.0.1" not in students
    with page_at(browser, local) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.get_by_role("button", name="Join").click()
        dialog = page.get_by_role("dialog", name="Open this page on another device")
        expect(dialog).to_be_visible()
        expect(page.locator("#join-addresses a").first).to_have_text(students)
        expect(page.get_by_role("img", name=f"QR code of {students}")).to_be_visible()
        page.get_by_role("button", name="Close").click()
        stroke(page, DIGITS["1"][0])
        expect(page.locator("#guess")).to_have_text("1", timeout=5000)
        page.wait_for_function("location.search.includes('d=')")
        page.get_by_role("button", name="Copy link").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith(students) and "d=" in copied


def start(page, epochs: str, name: str) -> None:
    """Ask for a run of a network without hidden layers (a quick epoch) from the page."""
    expect(page.locator("#train-start")).to_be_enabled()
    page.fill("#train-hidden", "none")
    page.fill("#train-batch", "1024")
    page.fill("#train-epochs", epochs)
    page.fill("#train-name", name)
    page.click("#train-start")


def test_two_browsers_queue_and_each_stops_only_its_own(browser, room):
    local, _, teacher = room
    with page_at(browser, local) as ada, page_at(browser, local) as bob:
        start(ada, "100", "Ada's")
        expect(ada.locator("#train-curves")).to_have_attribute("data-points", re.compile(r"[1-9]"),
                                                              timeout=60_000)  # fmt: skip
        expect(ada.locator("#train-stop")).to_be_enabled()
        bob.reload()
        bob.wait_for_selector("body[data-ready=true]")
        told = bob.locator("#train-status")
        expect(told).to_contain_text("Ada's is training for another browser")
        expect(bob.locator("#train-stop")).to_be_disabled()  # not Bob's to stop
        start(bob, "1", "Bob's")
        expect(bob.locator("#train-status")).to_have_attribute("data-position", "1")
        expect(bob.locator("#train-status")).to_contain_text("Your run Bob's is next")
        ada.click("#train-stop")
        expect(bob.locator("#train-status")).to_have_attribute("data-state", "done", timeout=60_000)
        expect(bob.locator("#page-model option").nth(1)).to_contain_text("Bob's")
        expect(bob.locator("#page-model option").nth(1)).to_contain_text("yours")
        with page_at(browser, teacher) as desk:
            expect(desk.locator("#teacher-switch")).to_be_enabled()
            desk.click("#teacher-switch")
            expect(desk.locator("#teacher-switch-status")).to_contain_text("Training is off")
            start(ada, "1", "Ada's again")
            refused = ada.locator("#train-status")
            expect(refused).to_contain_text("switched off for now by the teacher")
            desk.click("#teacher-switch")
            expect(desk.locator("#teacher-switch-status")).to_contain_text("Training is on")
