"""The frame every report shares (classifier/pages): one base template and one stylesheet, autoescaping, and
the Chromium probe that the report tests rely on to see that no script runs."""
from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

import browser
from classifier.pages import render

REPO_ROOT = Path(__file__).resolve().parents[2]
REPORT_TEMPLATES = [REPO_ROOT / "container/classifier/debugger/templates/debugger-report.html",
                    *sorted((REPO_ROOT / "scripts/reports/templates").glob("*.html")),
                    *sorted((REPO_ROOT / "scripts/monitor/templates").glob("*.html"))]


@pytest.mark.slow
def test_the_probe_sees_markup_that_became_an_element(tmp_path):
    """The check can fail: a page that writes the name without escaping it runs its handler, and the
    name is no longer text on the page."""
    page = tmp_path / "unsafe.html"
    page.write_text(f"<!DOCTYPE html><html><head><title>unsafe</title></head><body><p>class: {browser.MARKUP}</p>"
                    "</body></html>")
    rendered = browser.render(page, tmp_path)
    assert rendered.script_calls == ["alert(1)"]
    assert browser.MARKUP not in rendered.text and rendered.images == [(0, 0)]
    with pytest.raises(AssertionError):
        browser.shows_as_text(rendered, browser.MARKUP)


@pytest.mark.slow
def test_the_frame_shows_every_value_as_text(tmp_path):
    (tmp_path / "page.html").write_text(
        '{% extends "base.html" %}{% import "macros.html" as m %}'
        '{% block nav %}{{ m.nav([("a", name)]) }}{% endblock %}'
        '{% block sections %}{% call m.section("a", name) %}{{ m.table(["h"], [[name]]) }}{{ m.note(name) }}'
        '{{ m.badge(name) }}{{ m.link("x.html", name, name) }}{{ m.command(name) }}{% endcall %}{% endblock %}')
    text = render.render(tmp_path, "page.html", title=browser.MARKUP, subtitle=browser.MARKUP, name=browser.MARKUP)
    # title, heading, subtitle, the link to the section, its heading, the cell, the note, the badge (class and
    # label), the link (text and title), the command
    assert "<img" not in text and text.count("&lt;img src=x onerror=alert(1)&gt;") == 12
    page = render.write(tmp_path / "out" / "page.html", text)
    browser.shows_as_text(browser.render(page, tmp_path), browser.MARKUP)


def test_a_value_the_python_side_forgot_fails_the_render(tmp_path):
    (tmp_path / "page.html").write_text('{% extends "base.html" %}{% block sections %}{{ missing }}{% endblock %}')
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        render.render(tmp_path, "page.html", title="t", subtitle="s")


@pytest.mark.parametrize("template", REPORT_TEMPLATES, ids=lambda path: path.name)
def test_every_report_extends_the_one_frame_and_stylesheet(template):
    text = template.read_text()
    assert '{% extends "base.html" %}' in text
    assert "<style" not in text and "style=" not in text and "<script" not in text
    assert "| safe" not in text and "|safe" not in text and "autoescape false" not in text
