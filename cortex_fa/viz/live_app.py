"""The dashboard over a :class:`~cortex_fa.viz.live.LiveSource`, refreshed in place.

A Panel periodic callback asks the (shared) source for news every
``period`` milliseconds. New data goes to :meth:`Dashboard.update`, which
keeps the user's selections; the page is never reloaded, Bokeh only receives
the changed data. Until the first results appear the page says what it is
waiting for; once every run of the sweep is finished it stops polling and
says so.
"""

from __future__ import annotations

import panel as pn

from cortex_fa.viz.layout import esc

PERIOD_MS = 2000


class LiveApp(pn.viewable.Viewer):
    """One browser session's live view of ``source``.

    Parameters
    ----------
    source : LiveSource
        Shared by all sessions of a server.
    period : int
        Milliseconds between two polls.
    """

    def __init__(self, source, period: int = PERIOD_MS, **params):
        super().__init__(**params)
        self.source, self.period = source, period
        self.version = -1
        self.dashboard = None
        self.callback = None
        self.status = pn.pane.HTML(sizing_mode="stretch_width", margin=(0, 10))
        self.body = pn.Column(sizing_mode="stretch_width")
        self.tick()

    def start(self) -> None:
        """Poll periodically (call inside a server session)."""
        if self.callback is None and not self.source.progress.finished:
            self.callback = pn.state.add_periodic_callback(self.tick, period=self.period)

    def tick(self) -> None:
        """Look at the source once; update the views if it changed."""
        from cortex_fa.viz.app import Dashboard

        version, ds, progress = self.source.poll()
        text = progress.text()
        if ds is None:
            self.status.object = (
                f'<div class="cfa-status"><b>{esc(self.source.label())}</b>: waiting for results in '
                f"{esc(self.source.path)} (a run or sweep writing there will show up here) · "
                f"{esc(text)}</div>")
        elif self.dashboard is None:
            self.status.object = ""
            self.dashboard = Dashboard(ds, self.source.label())
            self.dashboard.header.update(ds, text)
            self.body.objects = [self.dashboard]
        elif version != self.version:
            self.dashboard.update(ds, text)
        else:
            self.dashboard.header.set_status(text)
        self.version = version
        if progress.finished and self.callback is not None:
            self.callback.stop()
            self.callback = None

    def __panel__(self):
        return pn.Column(self.status, self.body, sizing_mode="stretch_width")


def create_live_app(source, period: int = PERIOD_MS):
    """A fresh live dashboard for one session, polling already started if in a server."""
    app = LiveApp(source, period)
    if pn.state.curdoc is not None:
        app.start()
    layout = pn.Column(app, sizing_mode="stretch_width")
    layout.live = app
    return layout
