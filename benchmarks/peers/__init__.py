"""The libraries of ``bench_peers.py``: one module per library, each with its no-op job, its
producer calls and its worker command line (see :class:`peers.common.Peer`)."""

MODULES = {
    "jobmaster": "peers.jobmaster_app",
    "rq": "peers.rq_app",
    "arq": "peers.arq_app",
    "saq": "peers.saq_app",
    "dramatiq": "peers.dramatiq_app",
    "celery": "peers.celery_app",
    "huey": "peers.huey_app",
    "taskiq": "peers.taskiq_app",
    "bullmq": "peers.bullmq_app",
    "streaq": "peers.streaq_app",
    "streams": "peers.streams_app",
}
"""Library name -> module defining ``PEER``, in the table's order."""
