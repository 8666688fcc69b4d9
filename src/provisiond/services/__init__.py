"""Use cases. Each is ``async def verb_noun(uow, *, ..., now)``: the transaction boundary,
the one place its rules are enforced, writing its event in the same transaction."""
