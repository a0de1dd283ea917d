"""``--interactive``: a person plays the user at the terminal (top floor).

The person thinks of an item, names one of its attributes (the opening turn), then answers the policy's
questions with y/n and, when shown a list of recommended items, types the number of the one they accept (0 for
none). The system is the same environment, ranker and policy as in the simulated runs; only the answers come
from the terminal (:class:`TerminalUser` has the simulated user's interface). Tests drive it through
``input_stream``.
"""

import sys

import torch

from recbole_crs.conversation.environment import Conversations
from recbole_crs.conversation.episodes import EpisodeRandomness
from recbole_crs.conversation.loop import step
from recbole_crs.errors import CRSInputError

SHOWN_ATTRIBUTES = 8  # attributes printed next to a recommended item


class EndOfInput(Exception):
    """The person's input ended (end of file) before the conversation did."""


class TerminalUser:
    """Answers read from ``input_stream``, prompts written to ``output_stream``."""

    def __init__(self, dataset, catalogue, input_stream, output_stream):
        self.catalogue = catalogue
        self.attribute_tokens = dataset.field2id_token[dataset.attribute_field]
        self.attribute_ids = dataset.field2token_id[dataset.attribute_field]
        self.item_tokens = dataset.field2id_token[dataset.iid_field]
        self.input, self.output = input_stream, output_stream

    def _read(self, prompt):
        self.output.write(prompt)
        self.output.flush()
        line = self.input.readline()
        if not line:
            raise EndOfInput
        return line.strip()

    def say(self, text):
        self.output.write(text + "\n")

    def opening(self, rows):
        examples = ", ".join(str(t) for t in self.attribute_tokens[1:4])
        while True:
            token = self._read(f"Name one attribute of the item you have in mind (e.g. {examples}): ")
            attribute = self.attribute_ids.get(token, 0)
            if attribute > 0 and self.catalogue.attribute_items[attribute].any():
                return torch.tensor([attribute])
            self.say(f"'{token}' is not an attribute of any item; try again.")

    def answer(self, rows, attributes):
        token = self.attribute_tokens[int(attributes[0])]
        while True:
            reply = self._read(f"Does your item have '{token}'? [y/n] ").lower()
            if reply in ("y", "yes", "n", "no"):
                return torch.tensor([reply.startswith("y")])
            self.say("Please answer y or n.")

    def judge(self, rows, items):
        shown = [int(item) for item in items[0] if int(item) > 0]
        self.say("I recommend:")
        for number, item in enumerate(shown, start=1):
            attributes = [str(self.attribute_tokens[a]) for a in self.catalogue.attributes_of(item)]
            more = " ..." if len(attributes) > SHOWN_ATTRIBUTES else ""
            self.say(f"  {number:2d}. {self.item_tokens[item]}  ({' '.join(attributes[:SHOWN_ATTRIBUTES])}{more})")
        while True:
            reply = self._read(f"The number of your item (1-{len(shown)}), or 0 if it is not there: ")
            if reply.isdigit() and int(reply) <= len(shown):
                return torch.tensor([int(reply)])
            self.say(f"Please type a number from 0 to {len(shown)}.")


def user_id(dataset, token):
    """The internal id of the user ``token``; an unknown one is a :class:`CRSInputError`."""
    ids = dataset.field2token_id[dataset.uid_field]
    if str(token) not in ids:
        raise CRSInputError(f"--user {token!r} is not a user of {dataset.dataset_name}: give a user id of its .inter file.")
    return ids[str(token)]


def play_interactive(setup, policy, options, user=None, input_stream=None, output_stream=None):
    """One conversation with a person as the user; returns ``{"success_action", "rank", "actions"}`` (0 = no
    success). ``user``: a user token whose training history the ranker reads (default: the user of the split's
    first episode)."""
    input_stream = input_stream or sys.stdin
    output_stream = output_stream or sys.stdout
    data = setup.dataset
    uid = user_id(data, user) if user is not None else int(setup.pairs(options["split"], 1)[0, 0])
    person = TerminalUser(data, setup.catalogue, input_stream, output_stream)
    person.say(f"You are user {data.field2id_token[data.uid_field][uid]} ({setup.ranker.name} + {policy.name}, "
               f"at most {options['max_turns'] - 1} system turns).")
    randomness = EpisodeRandomness(options["seed"], [0], setup.catalogue.n_items, options["max_turns"])
    try:
        conversations = Conversations([uid], person, setup.catalogue, randomness, options["max_turns"], options["topk"])
        with torch.no_grad():
            while step(conversations, setup.ranker, policy):
                pass
    except EndOfInput:
        person.say("\nInput ended: conversation stopped.")
        return {"success_action": 0, "rank": 0, "actions": None}
    outcome = {"success_action": int(conversations.success_action[0]), "rank": int(conversations.success_rank[0]),
               "actions": int(conversations.actions[0])}
    if outcome["success_action"]:
        person.say(f"Found at turn {outcome['success_action']} (rank {outcome['rank']}).")
    else:
        person.say(f"Not found within {options['max_turns'] - 1} turns.")
    return outcome
