"""The worker process: APScheduler jobs for dispatch and polling."""
