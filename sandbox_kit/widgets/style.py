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

# Colours come from JupyterLab's theme variables, so every view follows Lab's light and dark
# themes; the fallbacks (Lab's light values) keep a page without them readable (issue 14).
# State colours are mixed with the theme's text colour and a transparent background, which
# keeps their contrast in both themes. The log console stays dark in both themes, like a
# terminal: its level badges are tuned for that background.
CSS = """
<style>
.sk-app {
  --sk-fg: var(--jp-ui-font-color0, #111);
  --sk-fg1: var(--jp-ui-font-color1, rgba(0, 0, 0, .87));
  --sk-fg2: var(--jp-ui-font-color2, rgba(0, 0, 0, .54));
  --sk-fg3: var(--jp-ui-font-color3, rgba(0, 0, 0, .38));
  --sk-bg: var(--jp-layout-color1, #fff);
  --sk-bg2: var(--jp-layout-color2, #eee);
  --sk-line: var(--jp-border-color2, #e0e0e0);
  --sk-line3: var(--jp-border-color3, #eee);
  --sk-red: var(--jp-error-color1, #f44336);
  --sk-green: var(--jp-success-color1, #4caf50);
  --sk-blue: var(--jp-brand-color1, #2196f3);
  --sk-orange: var(--jp-warn-color1, #ff9800);
  --sk-cyan: var(--jp-info-color1, #00bcd4);
  --sk-purple: var(--jp-mirror-editor-meta-color, #a2f);
  font-family: var(--jp-ui-font-family, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
    sans-serif);
  color: var(--sk-fg1); max-width: 1500px; margin: 0 auto; min-width: 0; }
.sk-app * { box-sizing: border-box; }
.sk-header { display: flex; align-items: baseline; flex-wrap: wrap; gap: 4px 12px;
  padding: 4px 2px 10px; border-bottom: 1px solid var(--sk-line); margin-bottom: 12px; }
.sk-header h1 { font-size: 22px; margin: 0; font-weight: 650; letter-spacing: -0.2px;
  color: var(--sk-fg); }
.sk-header .sk-sub { color: var(--sk-fg2); font-size: 13px; overflow-wrap: anywhere; }
.sk-card { background: var(--sk-bg); border: 1px solid var(--sk-line); border-radius: 8px;
  padding: 12px 14px; box-shadow: 0 1px 2px rgba(15, 23, 42, .06); min-width: 0; }
.sk-card-title { font-size: 14px; font-weight: 650; color: var(--sk-fg); margin: 0 0 6px; }
.sk-muted { color: var(--sk-fg2); font-size: 12px; }
.sk-ellipsis { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; }
.sk-msg { border-radius: 6px; padding: 6px 10px; font-size: 13px; margin-top: 4px;
  overflow-wrap: anywhere; border: 1px solid; }
.sk-msg-error { background: color-mix(in srgb, var(--sk-red) 10%, transparent);
  color: color-mix(in srgb, var(--sk-red) 65%, var(--sk-fg));
  border-color: color-mix(in srgb, var(--sk-red) 35%, transparent); }
.sk-msg-ok { background: color-mix(in srgb, var(--sk-green) 10%, transparent);
  color: color-mix(in srgb, var(--sk-green) 55%, var(--sk-fg));
  border-color: color-mix(in srgb, var(--sk-green) 35%, transparent); }
.sk-msg-info { background: color-mix(in srgb, var(--sk-blue) 9%, transparent);
  color: color-mix(in srgb, var(--sk-blue) 60%, var(--sk-fg));
  border-color: color-mix(in srgb, var(--sk-blue) 30%, transparent); }
.sk-status { --sk-c: var(--sk-fg2); display: inline-flex; align-items: center; gap: 6px;
  font-size: 13px; font-weight: 600; padding: 2px 9px; border-radius: 999px;
  white-space: nowrap; line-height: 1.5;
  background: color-mix(in srgb, var(--sk-c) 15%, transparent);
  color: color-mix(in srgb, var(--sk-c) 62%, var(--sk-fg)); }
.sk-st-queued { --sk-c: var(--sk-orange); }
.sk-st-running { --sk-c: var(--sk-blue); }
.sk-st-running .sk-icon { animation: sk-pulse 1.2s ease-in-out infinite; }
.sk-st-success { --sk-c: var(--sk-green); }
.sk-st-failed { --sk-c: var(--sk-red); }
.sk-st-timeout { --sk-c: var(--sk-orange); }
.sk-st-lost { --sk-c: var(--sk-purple); }
@keyframes sk-pulse { 0%, 100% { opacity: 1; } 50% { opacity: .35; } }
.sk-type-title { line-height: 1.25; font-size: 13px; }
.sk-type { display: inline-block; min-width: 34px; font-weight: 700; font-size: 12px;
  color: var(--sk-fg1); }
.sk-gap-sm { gap: 6px; }
.sk-gap-md { gap: 8px; }
.sk-gap-lg { gap: 12px; }
.widget-hbox.sk-gap-sm, .widget-hbox.sk-gap-md, .widget-hbox.sk-gap-lg { flex-wrap: wrap; }
.sk-row { border-bottom: 1px solid var(--sk-line3); padding: 6px 0; align-items: center;
  min-width: 0; }
.sk-log-scroll { background: #0f1720; border-radius: 6px; height: 430px; overflow-y: auto;
  font-family: var(--jp-code-font-family, "JetBrains Mono", Menlo, Consolas, monospace);
  font-size: 12px; padding: 6px 0; }
.sk-log-scroll .sk-line { display: flex; gap: 8px; padding: 1px 10px; color: #d9e2ec;
  white-space: pre-wrap; word-break: break-all; line-height: 1.45; }
.sk-line:hover { background: #1c2733; }
.sk-line .sk-ts { color: #7b8794; flex: none; }
.sk-line .sk-lt { color: #9fb3c8; flex: none; width: 30px; }
.sk-line .sk-lj { color: #627d98; flex: none; }
.sk-line .sk-tx { flex: 1; min-width: 0; }
.sk-badge { flex: none; display: inline-block; width: 58px; text-align: center;
  border-radius: 3px; font-size: 10.5px; font-weight: 700; line-height: 16px; }
.sk-lv-DEBUG { background: #334e68; color: #d9e2ec; }
.sk-lv-INFO { background: #1d5fa8; color: #fff; }
.sk-lv-WARNING { background: #c27c0e; color: #fff; }
.sk-lv-ERROR { background: #c0261a; color: #fff; }
.sk-line.sk-note .sk-tx { color: #f0b429; font-style: italic; }
.sk-log-scroll .sk-empty { color: #9aa5b1; }
.sk-log-pinned { display: flex; flex-direction: column-reverse; height: auto;
  min-height: 48px; max-height: 320px; }
.sk-empty { color: var(--sk-fg3); padding: 40px 16px; text-align: center; font-family: inherit;
  font-size: 14px; }
.sk-log-pinned .sk-empty { padding: 12px 16px; }
.sk-progress { font-family: var(--jp-code-font-family, Menlo, Consolas, monospace);
  font-size: 12px; color: var(--sk-fg1); display: flex; align-items: center; gap: 8px;
  min-width: 0; }
.sk-bar { flex: none; width: 160px; max-width: 30%; height: 8px; background: var(--sk-bg2);
  border-radius: 4px; overflow: hidden; }
.sk-bar > div { height: 100%; background: var(--sk-blue); }
.sk-table { border-collapse: collapse; width: 100%; font-size: 13px; }
.sk-table th { text-align: left; color: var(--sk-fg2); font-weight: 600; font-size: 12px;
  border-bottom: 1px solid var(--sk-line); padding: 6px 8px; }
.sk-table td { padding: 3px 8px; border-bottom: 1px solid var(--sk-line3); font-size: 12px;
  overflow-wrap: break-word; }
.sk-table td:last-child { overflow-wrap: anywhere; }
.sk-table th { white-space: nowrap; }
.sk-cells { display: flex; align-items: center; min-width: 0; }
.sk-cell { display: inline-block; flex-grow: 0; flex-shrink: 1; min-width: 0; font-size: 13px;
  padding: 0 6px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.sk-cell:last-child { flex-shrink: 4; }  /* free text (reason, description) gives way first */
.sk-table-box .sk-cells-box { flex: 1 1 0; min-width: 0; }
.sk-table-box .sk-row > .widget-button { flex: none; }
.sk-mono { font-family: var(--jp-code-font-family, Menlo, Consolas, monospace); font-size: 12px; }
.sk-metrics { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr));
  gap: 2px 16px; margin: 8px 0; font-size: 12.5px; }
.sk-result-head { display: flex; align-items: center; flex-wrap: wrap; gap: 4px 10px;
  margin: 4px 0; }
.sk-objective { font-size: 14px; }
.sk-files { margin: 4px 0; padding-left: 18px; font-size: 13px; overflow-wrap: anywhere; }
.sk-diff { max-height: 300px; padding: 8px; font-size: 12px; overflow: auto; }
.sk-active-mark { color: var(--sk-orange); font-size: 15px; }
.sk-source { max-height: 420px; overflow: auto; border: 1px solid var(--sk-line);
  border-radius: 6px; }
.sk-source pre { margin: 0; padding: 8px 10px; font-size: 12px; line-height: 1.45; }
.sk-cached { display: inline-block; font-size: 11px; font-weight: 700; border-radius: 999px;
  padding: 1px 8px; margin-left: 4px; vertical-align: middle;
  background: color-mix(in srgb, var(--sk-purple) 15%, transparent);
  color: color-mix(in srgb, var(--sk-purple) 65%, var(--sk-fg)); }
.sk-row-extra { flex-wrap: wrap; align-self: stretch; justify-content: flex-end; }
.sk-top { flex-wrap: wrap; }
.sk-row-line { flex-wrap: wrap; row-gap: 6px; }
.sk-row-line > * { flex-shrink: 0; }
.sk-row-line > .sk-run-group { flex: 1 1 370px; min-width: 0; margin: 0; }
.sk-run-group > .widget-textarea { min-width: 120px; }
.sk-run-group > .widget-button { width: auto !important; min-width: 90px; flex: none; }
.sk-row-extra .widget-dropdown > select { font-size: 12px; }
.sk-app .widget-dropdown, .sk-app .widget-text, .sk-app .widget-combobox { max-width: 100%; }
.sk-sweep-table { max-height: 360px; overflow: auto; border: 1px solid var(--sk-line);
  border-radius: 6px; }
.sk-sweep-table td, .sk-sweep-table th { white-space: nowrap; }
.sk-header-row { align-items: flex-start; }
.sk-header-row > .sk-header-title { flex: 1 1 auto; min-width: 0; }
.sk-bell-box { flex: none; align-items: flex-end; margin-left: 12px; }
.sk-app .widget-button.sk-bell { min-width: 56px; border-radius: 999px; font-weight: 600; }
.sk-app .widget-button.sk-bell.sk-bell-unread {
  background: color-mix(in srgb, var(--sk-blue) 18%, var(--sk-bg));
  color: color-mix(in srgb, var(--sk-blue) 65%, var(--sk-fg)); }
.sk-app .widget-button.sk-bell.sk-bell-alert { background: var(--sk-red); color: #fff; }
.sk-bell-panel { width: min(560px, 100%); max-height: 420px; overflow: auto;
  background: var(--sk-bg); border: 1px solid var(--sk-line); border-radius: 8px;
  margin-top: 6px; box-shadow: 0 4px 16px rgba(15, 23, 42, .16); }
.sk-bell-title { padding: 8px 10px 2px; margin: 0; }
.sk-bell-item { padding: 6px 10px; border-bottom: 1px solid var(--sk-line3); font-size: 12.5px;
  overflow-wrap: anywhere; }
.sk-bell-item.sk-bell-bad { background: color-mix(in srgb, var(--sk-red) 8%, transparent);
  border-left: 3px solid var(--sk-red); }
.sk-deadline-missed { display: inline-block; font-size: 11px; font-weight: 700;
  border-radius: 999px; padding: 1px 8px; margin-left: 4px;
  background: color-mix(in srgb, var(--sk-orange) 15%, transparent);
  color: color-mix(in srgb, var(--sk-orange) 60%, var(--sk-fg)); }
.sk-fire-item { display: inline-block; margin: 0 4px 2px 0; }
.sk-fire { --sk-c: var(--sk-fg2); display: inline-block; font-size: 12px; font-weight: 600;
  border-radius: 999px; padding: 2px 9px;
  background: color-mix(in srgb, var(--sk-c) 14%, transparent);
  color: color-mix(in srgb, var(--sk-c) 62%, var(--sk-fg)); }
.sk-fire-missed, .sk-fire-error { --sk-c: var(--sk-red); }
.sk-fire-waiting, .sk-fire-due { --sk-c: var(--sk-orange); }
.sk-sched-active { color: color-mix(in srgb, var(--sk-green) 60%, var(--sk-fg));
  font-weight: 600; }
.sk-sched-paused { color: color-mix(in srgb, var(--sk-orange) 60%, var(--sk-fg));
  font-weight: 600; }
.sk-schedules-table td { vertical-align: top; }
.sk-preview { margin: 4px 0 0 18px; padding: 0; font-size: 12.5px; }
.sk-app .widget-button.mod-primary { background: var(--jp-brand-color1, #2196f3); }
.sk-app .widget-button.mod-danger { background: var(--jp-error-color1, #f44336); }
.sk-app .widget-button { max-width: 100%; }
.sk-app .widget-tab > .p-TabBar .p-TabBar-tab, .sk-app .lm-TabBar-tab { font-size: 13px;
  min-width: 0; }
.sk-app .widget-tab > .widget-tab-contents { min-width: 0; }
/* Text blocks inside HTML widgets: their own line height, not the widgets' 28 px line. */
.sk-muted, .sk-msg, .sk-empty, .sk-sub, .sk-preview, .sk-files, .sk-metrics, .sk-table,
.sk-bell-item, .sk-card-summary .widget-html-content { line-height: 1.45; }
.sk-card-head { flex-wrap: wrap; gap: 8px; }
.sk-card-ids { display: flex; align-items: baseline; gap: 10px; min-width: 0; }
.sk-card-ids > .sk-type { min-width: 0; }
.sk-job-card .sk-log-scroll { margin-top: 6px; }
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
