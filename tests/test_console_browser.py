"""The console in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import subprocess

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import ROOT, Stack, new_tenant, redis_stack_env

STACK_ENV = redis_stack_env  # read by conftest's isolated_stack


FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    done = subprocess.run(
        [str(ROOT / "scripts/browser/chromium.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"chromium could not be installed:\n{done.stdout}\n{done.stderr}")
        pytest.skip(f"no chromium on this machine: {done.stderr.strip()[-300:]}")
    path: str = done.stdout.strip().split("path=", 1)[1]
    return path


def test_console_in_chromium(isolated_stack: Stack, chromium_path: str) -> None:
    tenant = new_tenant(isolated_stack.admin, isolated_stack.server)
    try:
        tenant.account("cash", normal_balance="debit", overdraft_limit=None)
        tenant.account("users:alice")
        tenant.transfer("cash", "users:alice", 4200)
        base = isolated_stack.server.url
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path, args=FLAGS)
            try:
                page = browser.new_page()
                page.goto(f"{base}/console")
                assert page.url == f"{base}/console/login"
                page.fill("input[name=api_key]", tenant.keys["read"])
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/console")
                [cookie] = [c for c in page.context.cookies() if c["name"] == "moneta_console"]
                assert cookie["httpOnly"]
                assert cookie["secure"]
                assert cookie["sameSite"] == "Strict"
                assert page.evaluate("document.cookie") == ""  # invisible to scripts
                page.click(f"a[href='/console/ledgers/{tenant.ledger_id}']")
                page.wait_for_url(f"{base}/console/ledgers/{tenant.ledger_id}")
                row = page.locator("tr", has_text="users:alice")
                assert "4200" in row.inner_text()
                page.click("text=Sign out")
                page.wait_for_url(f"{base}/console/login")
                page.goto(f"{base}/console")
                assert page.url == f"{base}/console/login"
            finally:
                browser.close()
    finally:
        tenant.client.close()
