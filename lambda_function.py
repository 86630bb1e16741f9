"""AWS DeepLens project Lambda (Greengrass v1, Python 3.7): runs the roadedge pipeline in a thread.

Deploy it as a long-lived (pinned) Lambda with the `roadedge` packages (edge/,
device_profiles/) and PyYAML in the deployment zip. At import it loads the
`deeplens` profile (awscam camera, awscam GPU inference, the project-stream
FIFO /tmp/results.mjpeg), plus the YAML file named by ROADEDGE_CONFIG if set,
and runs the pipeline in a daemon thread, restarting it after a failure, the
way the DeepLens samples run their infinite_infer_loop. function_handler is
never called for a pinned Lambda but must exist.

Only the standard library and edge.* are imported here; device libraries
(awscam, greengrasssdk) are imported lazily by the plugins that need them.
"""
import logging
import os
import threading
import time

from edge import app, config

log = logging.getLogger("roadedge")
RESTART_DELAY_S = 5.0


def load_settings():
    return config.load(os.environ.get("ROADEDGE_PROFILE", "deeplens"), os.environ.get("ROADEDGE_CONFIG") or None)


def infinite_infer_loop(stop=None, restarts=None):
    """Build and run the pipeline until `stop` is set; a failure is logged and the pipeline rebuilt.

    `restarts`: give up after this many failures (None: never), so tests and a broken setup end.
    """
    stop = stop or threading.Event()
    failures = 0
    while not stop.is_set():
        runtime = None
        try:
            runtime = app.build(load_settings())
            summary = runtime.pipeline.run()
            log.info("pipeline ended: %d frames, %.1f FPS", summary["frames"], summary["fps"])
            if runtime.pipeline.config["pipeline"]["frames"]:
                return summary  # a bounded run (tests, one-shot captures) ends the loop
        except Exception as err:  # the Lambda must keep running: log, wait, rebuild
            failures += 1
            log.error("pipeline failed (%d): %s", failures, err)
            if restarts is not None and failures > restarts:
                raise
            stop.wait(RESTART_DELAY_S)
        finally:
            if runtime is not None:
                runtime.close()
    return None


def function_handler(event, context):
    """Greengrass calls this for messages addressed to the Lambda; the work happens in the loop thread."""
    return None


if os.environ.get("ROADEDGE_LAMBDA_AUTOSTART", "1") == "1":
    logging.basicConfig(level=logging.INFO, format="roadedge: %(message)s")
    LOOP = threading.Thread(target=infinite_infer_loop, name="roadedge-infer", daemon=True)
    LOOP.start()
    time.sleep(0)  # let the loop thread start before Greengrass finishes importing the module
