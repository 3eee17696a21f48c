# Per-function concurrency caps and strict function priority.
#
# A cap bounds how many invocations of one function may be in flight at
# once, so that one hot function cannot take the whole platform budget.
# A function's rank is multiplied by caps_rank_weight, larger than all the
# other shipped policies add together, so a higher-ranked function always
# goes first: strict priority.
#
# Both tables are empty as shipped: copy this file to SEQUOIA_POLICY_DIR
# and fill them.
package sequoia

# Function name → most invocations in flight at once.
caps_function_caps := {}

# Function name → rank; higher ranks go first.
caps_function_ranks := {}

caps_rank_weight := 1000

# Two keys, since a function may have a cap, a rank, or both.
contribution.caps := {"concurrency_cap": caps_function_caps[input.function]}

contribution.caps_rank := {"priority": caps_function_ranks[input.function] * caps_rank_weight}
