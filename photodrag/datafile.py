"""Reading the project's YAML/JSON files (presets, batch recipes) safely, with line numbers.

The event stream is read first (it is not recursive), so depth and size are bounded before
any node is built: deep nesting, alias bombs, tags and 5000-digit numbers become one error
that names the file and the line. The result is plain data plus {key path: line}, so a
checker can say `recipe.yaml line 6: edits[0].strength: ...`.
"""

from typing import Dict, Type


def compose(text: str, where: str, error: Type[Exception], max_depth: int = 20, max_events: int = 100_000):
    """(plain data, {key path: line}) of YAML (JSON is read as YAML too); only plain types.
    Any problem is one `error` naming `where` and the line."""
    import yaml
    try:
        # the event stream first (not recursive): bound depth and size before building anything
        depth, events = 0, 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            events += 1
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            if depth > max_depth or events > max_events:
                raise error(f'{where} line {event.start_mark.line + 1}: the file is nested too deeply '
                                      f'(over {max_depth} levels) or too long (over {max_events} items)')
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        line = f' line {mark.line + 1}' if mark is not None else ''
        raise error(f'{where}{line}: not valid YAML or JSON: {getattr(e, "problem", None) or e}') from None
    except (RecursionError, ValueError) as e:
        raise error(f'{where}: not a usable file: {str(e)[:100]}') from None
    lines: Dict[tuple, int] = {}
    budget = [100_000]
    constructor = yaml.SafeLoader('')

    def walk(node, path, depth):
        budget[0] -= 1
        if budget[0] < 0 or depth > max_depth:
            raise error(f'{where} line {node.start_mark.line + 1}: the file is nested too deeply or too long')
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = scalar(k)
                if not isinstance(key, (str, int)):
                    raise error(f'{where} line {k.start_mark.line + 1}: a key must be a name')
                if key in out:
                    raise error(f'{where} line {k.start_mark.line + 1}: {key!r} is given twice')
                lines[path + (key,)] = k.start_mark.line + 1
                out[key] = walk(v, path + (key,), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [walk(v, path + (i,), depth + 1) for i, v in enumerate(node.value)]
        return scalar(node)

    def scalar(node):
        if not isinstance(node, yaml.ScalarNode):
            raise error(f'{where} line {node.start_mark.line + 1}: expected a name or number here')
        try:
            return constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError) as e:
            raise error(f'{where} line {node.start_mark.line + 1}: {str(e)[:100]}') from None
        except yaml.YAMLError as e:
            raise error(f'{where} line {node.start_mark.line + 1}: {getattr(e, "problem", None) or e}') \
                from None

    if root is None:
        return None, {(): 1}
    return walk(root, (), 0), lines
