"""The embedded default's broker: kombu's filesystem transport, with each message written whole before any
worker can see it.

kombu writes a message straight into the folder the workers read (celery/kombu#1551): a worker listing the
folder between the file's creation and its write takes an empty file, and dies of the JSONDecodeError (seen
in CI, tests/automation/test_celery_worker.py). Here a message is written under a name no queue reads, a dot
first (the reader keeps names whose part after the first dot is `<queue>.msg`), and renamed into place,
which a reader sees whole or not at all."""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"  # kombu's own naming
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
