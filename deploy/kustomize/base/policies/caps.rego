# Per-function concurrency caps and strict function priority.
#
# A cap bounds how many invocations of one function may be in flight at
# once, so that one hot function cannot take the whole platform budget.
# A function's rank is multiplied by rank_weight, which is larger than
# anything the other shipped policies add, so a higher-ranked function
# always goes first: strict priority.
#
# Both tables are empty as shipped; an operator fills them in a copy of
# this file in SEQUOIA_POLICY_DIR.
package sequoia.policies.caps

# Function name → most invocations in flight at once.
function_caps := {}

# Function name → rank; higher ranks go first.
function_ranks := {}

rank_weight := 1000

concurrency_cap := function_caps[input.function]

priority := function_ranks[input.function] * rank_weight
