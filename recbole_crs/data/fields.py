"""Names shared by the converters, the dataset and the benchmark: split values and atomic-file columns.

The field names are also configuration keys (``properties/overall.yaml``: ``CONFIRMED_FIELD``, ...); the column
headers below are the defaults the converters write, so converted data loads with the default configuration.
"""

SPLITS = ("train", "valid", "test")  # values of the optional ``split`` column, in time order
TRAIN_SPLIT, EVALUATED_SPLITS = SPLITS[0], SPLITS[1:]  # rows only trained on; rows evaluated

USER_COLUMN = "user_id:token"
ITEM_COLUMN = "item_id:token"
TIME_COLUMN = "timestamp:float"
ATTRIBUTES_COLUMN = "attributes:token_seq"
CONFIRMED_COLUMN = "confirmed_attributes:token_seq"
REJECTED_COLUMN = "rejected_items:token_seq"
# Parallel to the two columns above: the 1-based dialogue turn of each entry (turn 1 = initial attribute).
CONFIRMED_TURNS_COLUMN = "confirmed_turns:float_seq"
REJECTED_TURNS_COLUMN = "rejected_turns:float_seq"
SPLIT_COLUMN = "split:token"
# Extra column for the authors' evaluation protocol (see docs/converters.md).
CANDIDATE_COLUMN = "candidate_items:token_seq"
CANDIDATE_FIELD = CANDIDATE_COLUMN.split(":")[0]
