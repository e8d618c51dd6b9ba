"""Look and feel shared by the widgets: one stylesheet, status icons, small HTML helpers."""

from __future__ import annotations

import html

import ipywidgets as W

STATUS_ICONS = {
    "idle": "○",
    "queued": "◔",
    "running": "◉",
    "success": "✔",
    "failed": "✖",
    "cancelled": "⊘",
    "timeout": "⏱",
    "lost": "?",
}

CSS = """
<style>
.sk-app { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: var(--jp-ui-font-color1, #1f2933); max-width: 1500px; margin: 0 auto; }
.sk-header { display: flex; align-items: baseline; gap: 12px; padding: 4px 2px 10px;
  border-bottom: 1px solid var(--jp-border-color2, #e4e7eb); margin-bottom: 12px; }
.sk-header h1 { font-size: 22px; margin: 0; font-weight: 650; letter-spacing: -0.2px; }
.sk-header .sk-sub { color: var(--jp-ui-font-color2, #616e7c); font-size: 13px; }
.sk-card { background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color2, #e4e7eb); border-radius: 8px;
  padding: 12px 14px; box-shadow: 0 1px 2px rgba(15, 23, 42, .04); }
.sk-card-title { font-size: 14px; font-weight: 650; color: var(--jp-ui-font-color1, #323f4b);
  margin: 0 0 6px; }
.sk-muted { color: var(--jp-ui-font-color2, #7b8794); font-size: 12px; }
.sk-msg { border-radius: 6px; padding: 6px 10px; font-size: 13px; margin-top: 4px; }
.sk-msg-error { background: #fdecea; color: #8a1c12; border: 1px solid #f5c2bd; }
.sk-msg-ok { background: #e8f5ec; color: #17522a; border: 1px solid #b7dfc3; }
.sk-msg-info { background: #eef4fb; color: #1c4473; border: 1px solid #c4d8ef; }
.sk-status { display: inline-flex; align-items: center; gap: 6px; font-size: 13px;
  font-weight: 600; padding: 2px 9px; border-radius: 999px; white-space: nowrap; }
.sk-st-idle { background: #f0f2f5; color: #616e7c; }
.sk-st-queued { background: #fff6e0; color: #8d6708; }
.sk-st-running { background: #e3efff; color: #1559b4; }
.sk-st-running .sk-icon { animation: sk-pulse 1.2s ease-in-out infinite; }
.sk-st-success { background: #e3f6e8; color: #17692f; }
.sk-st-failed { background: #fde8e6; color: #a61b0f; }
.sk-st-cancelled { background: #eceff3; color: #52606d; }
.sk-st-timeout { background: #fff0e0; color: #a2540a; }
.sk-st-lost { background: #f1e8fb; color: #6b2fa3; }
@keyframes sk-pulse { 0%, 100% { opacity: 1; } 50% { opacity: .35; } }
.sk-type-title { line-height: 1.25; font-size: 13px; }
.sk-type { display: inline-block; min-width: 34px; font-weight: 700; font-size: 12px;
  color: var(--jp-ui-font-color1, #334e68); }
.sk-gap-sm { gap: 6px; }
.sk-gap-md { gap: 8px; }
.sk-gap-lg { gap: 12px; }
.sk-row { border-bottom: 1px solid var(--jp-border-color3, #f0f2f5); padding: 6px 0;
  align-items: center; }
.sk-log-scroll { background: #0f1720; border-radius: 6px; height: 430px; overflow-y: auto;
  font-family: "JetBrains Mono", Menlo, Consolas, monospace; font-size: 12px; padding: 6px 0; }
.sk-log-scroll .sk-line { display: flex; gap: 8px; padding: 1px 10px; color: #d9e2ec;
  white-space: pre-wrap; word-break: break-all; line-height: 1.45; }
.sk-line:hover { background: #1c2733; }
.sk-line .sk-ts { color: #7b8794; flex: none; }
.sk-line .sk-lt { color: #9fb3c8; flex: none; width: 30px; }
.sk-line .sk-lj { color: #627d98; flex: none; }
.sk-line .sk-tx { flex: 1; }
.sk-badge { flex: none; display: inline-block; width: 58px; text-align: center;
  border-radius: 3px; font-size: 10.5px; font-weight: 700; line-height: 16px; }
.sk-lv-DEBUG { background: #334e68; color: #d9e2ec; }
.sk-lv-INFO { background: #1d5fa8; color: #fff; }
.sk-lv-WARNING { background: #c27c0e; color: #fff; }
.sk-lv-ERROR { background: #c0261a; color: #fff; }
.sk-line.sk-note .sk-tx { color: #f0b429; font-style: italic; }
.sk-empty { color: #9aa5b1; padding: 40px 16px; text-align: center; font-family: inherit;
  font-size: 14px; }
.sk-progress { font-family: Menlo, Consolas, monospace; font-size: 12px; color: #334e68;
  display: flex; align-items: center; gap: 8px; }
.sk-bar { flex: none; width: 160px; height: 8px; background: #e4e7eb; border-radius: 4px;
  overflow: hidden; }
.sk-bar > div { height: 100%; background: #2f80ed; }
.sk-table { border-collapse: collapse; width: 100%; font-size: 13px; }
.sk-table th { text-align: left; color: var(--jp-ui-font-color2, #616e7c); font-weight: 600;
  font-size: 12px; border-bottom: 1px solid var(--jp-border-color2, #e4e7eb); padding: 6px 8px; }
.sk-cells { display: flex; align-items: center; }
.sk-cell { display: inline-block; flex: none; font-size: 13px; padding: 0 6px; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
.sk-mono { font-family: Menlo, Consolas, monospace; font-size: 12px; }
.sk-metrics { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr));
  gap: 2px 16px; margin: 8px 0; font-size: 12.5px; }
.sk-table td { padding: 3px 8px; border-bottom: 1px solid var(--jp-border-color3, #f0f2f5);
  font-size: 12px; }
.sk-result-head { display: flex; align-items: center; gap: 10px; margin: 4px 0; }
.sk-objective { font-size: 14px; }
.sk-files { margin: 4px 0; padding-left: 18px; font-size: 13px; }
.sk-diff { max-height: 300px; padding: 8px; font-size: 12px; }
.sk-active-mark { color: #e0a800; font-size: 15px; }
.sk-source { max-height: 420px; overflow: auto; border: 1px solid #e4e7eb; border-radius: 6px; }
.sk-source pre { margin: 0; padding: 8px 10px; font-size: 12px; line-height: 1.45; }
.sk-cached { display: inline-block; background: #ede9fe; color: #5b21b6; font-size: 11px;
  font-weight: 700; border-radius: 999px; padding: 1px 8px; margin-left: 4px;
  vertical-align: middle; }
.sk-row-extra { padding-left: clamp(0px, calc(100% - 420px), 564px); flex-wrap: wrap; }
.sk-top { flex-wrap: wrap; }
.sk-row-line { flex-wrap: wrap; row-gap: 6px; }
.sk-row-line > * { flex-shrink: 0; }
.sk-row-line > .widget-textarea { flex: 1 1 200px; min-width: 160px; }
.sk-row-line > .widget-button { width: auto !important; min-width: 90px; }
.sk-row-extra .widget-dropdown > select { font-size: 12px; }
.sk-sweep-table { max-height: 360px; overflow: auto; border: 1px solid #e4e7eb;
  border-radius: 6px; }
.sk-sweep-table td, .sk-sweep-table th { white-space: nowrap; }
.sk-header-row { align-items: flex-start; }
.sk-header-row > .sk-header-title { flex: 1 1 auto; min-width: 0; }
.sk-bell-box { flex: none; align-items: flex-end; margin-left: 12px; }
.sk-app .widget-button.sk-bell { min-width: 56px; border-radius: 999px; font-weight: 600; }
.sk-app .widget-button.sk-bell.sk-bell-unread { background: #e3efff; color: #1559b4; }
.sk-app .widget-button.sk-bell.sk-bell-alert { background: #d64545; color: #fff; }
.sk-bell-panel { width: min(560px, 100%); max-height: 420px; overflow: auto;
  background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color2, #e4e7eb);
  border-radius: 8px; margin-top: 6px;
  box-shadow: 0 4px 16px rgba(15, 23, 42, .12); }
.sk-bell-title { padding: 8px 10px 2px; margin: 0; }
.sk-bell-item { padding: 6px 10px; border-bottom: 1px solid #f0f2f5; font-size: 12.5px; }
.sk-bell-item.sk-bell-bad { background: #fdf2f1; border-left: 3px solid #d64545; }
.sk-deadline-missed { display: inline-block; background: #fff0e0; color: #a2540a;
  font-size: 11px; font-weight: 700; border-radius: 999px; padding: 1px 8px; margin-left: 4px; }
.sk-fire-item { display: inline-block; margin: 0 4px 2px 0; }
.sk-fire { display: inline-block; font-size: 12px; font-weight: 600; border-radius: 999px;
  padding: 2px 9px; background: #eceff3; color: #52606d; }
.sk-fire-missed, .sk-fire-error { background: #fde8e6; color: #a61b0f; }
.sk-fire-waiting, .sk-fire-due { background: #fff6e0; color: #8d6708; }
.sk-sched-active { color: #17692f; font-weight: 600; }
.sk-sched-paused { color: #a2540a; font-weight: 600; }
.sk-schedules-table td { vertical-align: top; }
.sk-preview { margin: 4px 0 0 18px; padding: 0; font-size: 12.5px; }
.sk-app .widget-button.mod-primary { background: #2563eb; }
.sk-app .widget-button.mod-danger { background: #d64545; }
.sk-app .widget-tab > .p-TabBar .p-TabBar-tab, .sk-app .lm-TabBar-tab { font-size: 13px; }
</style>
"""

# Keeps the log view at the bottom while the user is there; scrolling up pauses it and
# scrolling back to the bottom resumes it. Widget HTML never runs scripts, so this is shown
# once as a notebook output by :func:`sandbox_kit.widgets.dashboard`.
AUTOSCROLL_JS = """
<script>
(function () {
  if (window.__skAutoScroll) { return; }
  window.__skAutoScroll = true;
  const pinned = new WeakMap();
  function watch(el) {
    if (pinned.has(el)) { return; }
    pinned.set(el, true);
    el.addEventListener('scroll', function () {
      pinned.set(el, el.scrollHeight - el.scrollTop - el.clientHeight < 24);
      el.classList.toggle('sk-paused', !pinned.get(el));
    });
    new MutationObserver(function () {
      if (pinned.get(el)) { el.scrollTop = el.scrollHeight; }
    }).observe(el, {childList: true, subtree: true, characterData: true});
    el.scrollTop = el.scrollHeight;
  }
  new MutationObserver(function () {
    document.querySelectorAll('.sk-log-scroll').forEach(watch);
  }).observe(document.body, {childList: true, subtree: true});
})();
</script>
"""


def status_html(status: str, text: str | None = None) -> str:
    """A coloured status pill, e.g. ``✔ success``."""
    icon = STATUS_ICONS.get(status, "•")
    label = html.escape(text if text is not None else status)
    return (
        f'<span class="sk-status sk-st-{html.escape(status)}" title="{label}">'
        f'<span class="sk-icon">{icon}</span>{label}</span>'
    )


def cached_html(cached_from: str | None) -> str:
    """A "cached" badge for a job that reused another job's result (issue 11), else ``""``."""
    if not cached_from:
        return ""
    title = html.escape(f"result of job {cached_from}")
    return f'<span class="sk-cached" title="{title}">cached</span>'


def message_html(kind: str, text: str) -> str:
    """An inline message box (``error``, ``ok`` or ``info``); ``text`` is escaped."""
    return f'<div class="sk-msg sk-msg-{kind}">{html.escape(text)}</div>'


def card(title: str, *children: W.Widget, css: str = "") -> W.VBox:
    """A white card with a title."""
    box = W.VBox([W.HTML(f'<div class="sk-card-title">{html.escape(title)}</div>'), *children])
    box.add_class("sk-card")
    if css:
        box.add_class(css)
    return box


def gapped(box: W.Box, size: str = "md") -> W.Box:
    """Space a box's children (ipywidgets' Layout has no ``gap``; a CSS class does it)."""
    box.add_class(f"sk-gap-{size}")
    return box


def set_if_changed(widget: W.Widget, name: str, value: object) -> None:
    """Set a trait only when it differs (traitlets also checks, but this skips the lock)."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)
