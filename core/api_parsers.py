from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# The deepest body the API takes is a list of objects (a policy's avoid-conditions): depth 3. Python's json
# module recurses once per level and raises RecursionError (not a ValueError, so DRF let it through as a
# 500) near 1,000; well below both, a body is refused before any serializer walks it.
MAX_DEPTH = 32
TOO_DEEP = f"JSON parse error - nested deeper than {MAX_DEPTH} levels."


class DepthLimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as e:
            raise ParseError(TOO_DEEP) from e
        if depth(data) > MAX_DEPTH:
            raise ParseError(TOO_DEEP)
        return data


def depth(value) -> int:
    """Levels of lists and objects in a parsed JSON value, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest
