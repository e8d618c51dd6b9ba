"""Widgets for notebooks and the Voilà dashboard; each usable on its own.

>>> from sandbox_kit import Sandbox
>>> from sandbox_kit.widgets import LogPanel
>>> LogPanel(Sandbox())  # in a notebook cell: the live logs of every job
"""

from __future__ import annotations

from sandbox_kit.widgets.app import Dashboard, dashboard
from sandbox_kit.widgets.bell import NotificationBell
from sandbox_kit.widgets.control import ControlPanel
from sandbox_kit.widgets.job_card import JobCard
from sandbox_kit.widgets.jobs_view import JobsView
from sandbox_kit.widgets.logpanel import LogPanel
from sandbox_kit.widgets.models_view import ModelsView
from sandbox_kit.widgets.results import ResultsView
from sandbox_kit.widgets.schedules_view import SchedulesView
from sandbox_kit.widgets.sweeps_view import SweepsView
from sandbox_kit.widgets.upload import UploadCard

__all__ = [
    "ControlPanel",
    "Dashboard",
    "JobCard",
    "JobsView",
    "LogPanel",
    "ModelsView",
    "NotificationBell",
    "ResultsView",
    "SchedulesView",
    "SweepsView",
    "UploadCard",
    "dashboard",
]
