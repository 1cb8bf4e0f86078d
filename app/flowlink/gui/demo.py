"""Demo content for screenshots, the benchmark and trying the window out.

``populate`` fills a workspace through its public API and a real engine (so the
executions have real logs, outputs, children and errors). ``bulk_executions``
writes many finished executions with one INSERT ... SELECT: the way to get a
100 000- or 1 000 000-row store in seconds, for benchmarks and scale tests only.
"""

from __future__ import annotations

import textwrap

from flowlink.workspace.store import now
from flowlink.workspace.workspace import Workspace

DEMO_FLOWS = {
    "greet": '''
        def handler(system, this, inputs):
            """Says hello to whoever the inputs name."""
            name = inputs.get("name", "world")
            this.log(f"greeting {name}")
            this.save(output_value={"greeting": f"Hello, {name}!"})
            return this.success(f"greeted {name}")
    ''',
    "nightly-report": '''
        # Collects figures from two child flows and writes a summary.
        def handler(system, this, inputs):
            regions = system.setting("regions").get()
            this.log(f"building the report for {len(regions)} regions")
            parts = [this.flow("region-figures", region=r) for r in regions]
            total = sum(p.get("output_value")["orders"] for p in parts)
            this.save(output_value={"regions": regions, "orders": total})
            return this.success(f"{total} orders in {len(regions)} regions")
    ''',
    "region-figures": '''
        def handler(system, this, inputs):
            region = inputs["region"]
            orders = 40 + 7 * len(region)
            this.log(f"{region}: {orders} orders")
            this.save(output_value={"region": region, "orders": orders})
            return this.success(f"{region} done")
    ''',
    "sync-invoices": '''
        def handler(system, this):
            this.log("connecting to the invoice service")
            raise ConnectionError("invoice service refused the connection (port 8443)")
    ''',
}
DEMO_SETTINGS = {
    "regions": ["north", "south", "east"],
    "smtp": {"host": "mail.example.org", "port": 587, "starttls": True},
    "report-recipients": ["ops@example.org"],
}
DEMO_FILES = {
    "report-template.md": b"# Nightly report\n\nOrders: {orders}\nRegions: {regions}\n",
    "logo.bin": bytes(range(256)),
}


def populate(workspace: Workspace, engine: object | None = None, timeout: float = 60) -> list[int]:
    """Flows, settings, files and (with an engine) a few real executions; returns their ids."""
    for name, source in DEMO_FLOWS.items():
        workspace.add_flow(name, textwrap.dedent(source).lstrip())
    for name, value in DEMO_SETTINGS.items():
        workspace.set_setting(name, value)
    for name, content in DEMO_FILES.items():
        workspace.put_file(name, content)
    if engine is None:
        return []
    ids = [
        engine.submit("greet", {"name": "Ada"}),
        engine.submit("sync-invoices", {}),
        engine.submit("nightly-report", {}),
        engine.submit("greet", {"name": "Grace"}),
    ]
    if not engine.wait_ended(ids, timeout):
        raise TimeoutError("the demo executions did not end in time")
    # A call handed to a linked workspace, waiting there: shows the Workspace column.
    ids.append(workspace.create_execution("stock-levels", {"site": "depot-2"}, workspace="warehouse",
                                          parent_id=ids[2], started_by=f"execution:{ids[2]}"))
    return ids


def bulk_executions(workspace: Workspace, count: int, flows: int = 7) -> None:
    """``count`` finished executions in one statement (seconds for a million rows)."""
    started = now() - count
    with workspace.store.transaction() as tx:
        tx.execute(
            """
            WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
            INSERT INTO executions (flow, name, status, message, inputs, outputs, workspace,
                                    started_by, created_at, started_at, ended_at, version)
            SELECT 'flow-' || (i % ?), 'run ' || i,
                   CASE i % 10 WHEN 0 THEN 'ENDED_ERROR' WHEN 1 THEN 'ENDED_CANCELLED'
                               ELSE 'ENDED_SUCCESS' END,
                   CASE i % 10 WHEN 0 THEN 'failed on purpose ' || i ELSE 'ok' END,
                   '{}', '{}', CASE WHEN i % 13 = 0 THEN 'remote-b' ELSE NULL END,
                   'bulk', ? + i, ? + i, ? + i + 0.25, 3
            FROM seq
            """,
            (count, flows, started, started, started),
        )
