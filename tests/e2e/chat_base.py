"""The shared start of the chat end-to-end tests (test_chat.py, test_chat_ws.py): a cluster
with four registered, logged-in users, and helpers that act as one of them."""

import unittest

import harness as h


class ChatCase(unittest.TestCase):
    CLUSTER = "chat"  # the Cluster's name
    USERS = ("alice", "bob", "carol", "dave")

    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster(cls.CLUSTER)
        cls.c.start_all()
        cls.cp, cls.qp = cls.c.command_port, cls.c.query_port
        cls.u = {n: h.register_and_login(cls.cp, n) for n in cls.USERS}
        cls.txn = 0

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    def tok(self, n):
        return self.u[n]["access_token"]

    def uid(self, n):
        return self.u[n]["user_id"]

    def cmd(self, method, path, who, body=None, want=200):
        """A command as @who; asserts the status @want; the answer's JSON."""
        r = h.request(self.cp, method, path, body, token=self.tok(who))
        self.assertEqual(r.status, want, "%s %s: %r" % (method, path, r))
        return r.json()
