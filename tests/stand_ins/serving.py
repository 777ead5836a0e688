"""What every stand-in shares: an HTTP server on 127.0.0.1 and a free port, served on a thread of its own,
started and stopped the same way (and usable as a context manager), with an event that ends any reply a test
has told to stall, so that stopping never waits one out."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# serve_forever checks for shutdown this often: the default, 0.5 s, would be added to every test's teardown.
SHUTDOWN_POLL_SECONDS = 0.02


class StandInServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.stand_in = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True
        )
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
