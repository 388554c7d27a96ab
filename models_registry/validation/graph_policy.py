"""Which operations a SavedModel may run when it loads and serves, read from its protobuf.

Runs in the sandbox before the model is loaded: nothing here executes the
graph. Only what is reachable from the serving signature and from what the
loader runs (init op, resource initialisers, restore functions of custom
saveables) is checked, so the saver functions every Keras export carries
(SaveV2/RestoreV2, used only to write checkpoints) do not count against it.
"""

import re
from collections.abc import Iterable, Iterator
from typing import Any

# Ops that reach the file system, run Python, or write logs and checkpoints.
FORBIDDEN_OPS = {
    "ReadFile",
    "WriteFile",
    "MatchingFiles",
    "Save",
    "SaveV2",
    "SaveSlices",
    "Restore",
    "RestoreV2",
    "RestoreSlice",
    "MergeV2Checkpoints",
    "PyFunc",
    "PyFuncStateless",
    "EagerPyFunc",
    "ImmutableConst",  # memory-maps a file
    "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2",
    "LoadAndRemapMatrix",
    "GenerateVocabRemapping",
    "RecordInput",
    "DecodeProtoV2",  # may read a descriptor file
    "EncodeProto",
    "FileSystemSetConfiguration",
}
# Families: summary writers, queue-based readers, tf.data pipelines, debug dumps.
FORBIDDEN_PATTERN = re.compile(r"Summary|Reader|Dataset|Iterator|^Debug|^_Debug")

INIT_OP_SIGNATURE = "__saved_model_init_op"
LOAD_TIME_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "saved_model_init_op")
RESOURCE_FUNCTIONS = {"_create_resource", "_initialize", "_destroy_resource"}


def is_forbidden(node: Any) -> bool:
    op = node.op
    if op in FORBIDDEN_OPS or FORBIDDEN_PATTERN.search(op):
        return True
    if op == "PrintV2":
        stream = node.attr["output_stream"].s.decode("utf-8", "replace")
        return stream.startswith("file://")
    return False


def _called_functions(node: Any, library: set[str]) -> Iterator[str]:
    if node.op in library:  # a direct call of a library function
        yield node.op
    for value in node.attr.values():
        kind = value.WhichOneof("value")
        if kind == "func":
            yield value.func.name
        elif kind == "list":
            for func in value.list.func:
                yield func.name


def _node_name(tensor: str) -> str:
    return tensor.lstrip("^").split(":", 1)[0]


def _graph_ancestors(graph_def: Any, tensors: Iterable[str]) -> list[Any]:
    """The nodes of the top-level graph that the given tensors depend on."""
    nodes = {node.name: node for node in graph_def.node}
    pending = [_node_name(tensor) for tensor in tensors]
    seen: set[str] = set()
    found = []
    while pending:
        name = pending.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        found.append(node)
        pending.extend(_node_name(tensor) for tensor in node.input)
    return found


def _load_time_functions(meta_graph: Any) -> set[str]:
    """Functions the TF2 loader may run: resource set-up and custom restore functions."""
    objects = meta_graph.object_graph_def.nodes
    node_ids: set[int] = set()
    for obj in objects:
        for saveable in obj.saveable_objects.values():
            node_ids.update({saveable.save_function, saveable.restore_function})
        if obj.WhichOneof("kind") == "resource":
            node_ids.update(
                child.node_id for child in obj.children if child.local_name in RESOURCE_FUNCTIONS
            )
    names: set[str] = set()
    for node_id in node_ids:
        if not 0 < node_id < len(objects):
            continue
        obj = objects[node_id]
        kind = obj.WhichOneof("kind")
        if kind == "function":
            names.update(obj.function.concrete_functions)
        elif kind == "bare_concrete_function":
            names.add(obj.bare_concrete_function.concrete_function_name)
    return names


def forbidden_ops(meta_graph: Any, signature_name: str) -> list[str]:
    """Forbidden op types reachable when loading the model and calling ``signature_name``."""
    signatures = meta_graph.signature_def
    roots = [tensor.name for tensor in signatures[signature_name].outputs.values()]
    if INIT_OP_SIGNATURE in signatures:
        roots += [tensor.name for tensor in signatures[INIT_OP_SIGNATURE].outputs.values()]
    for key in LOAD_TIME_COLLECTIONS:
        if key in meta_graph.collection_def:
            roots += list(meta_graph.collection_def[key].node_list.value)

    library = {fn.signature.name: fn for fn in meta_graph.graph_def.library.function}
    names = set(library)
    reached_nodes = _graph_ancestors(meta_graph.graph_def, roots)
    pending_functions = set(_load_time_functions(meta_graph))
    for node in reached_nodes:
        pending_functions.update(_called_functions(node, names))

    # Every node of a reachable function counts, whether or not it feeds the
    # function's outputs: stateful ops run anyway.
    seen_functions: set[str] = set()
    while pending_functions:
        name = pending_functions.pop()
        if name in seen_functions or name not in library:
            continue
        seen_functions.add(name)
        for node in library[name].node_def:
            reached_nodes.append(node)
            pending_functions.update(_called_functions(node, names))
    return sorted({node.op for node in reached_nodes if is_forbidden(node)})
