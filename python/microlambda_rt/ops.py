"""The opcodes and code/frame flags of CPython 3.11 the engine reads and emits, named once.

Version-specific: a second CPython version is a second set of these facts, not ``if version`` in the engine.
"""

import dis
import opcode

OP = dis.opmap
_CACHES = opcode._inline_cache_entries
EXTENDED_ARG = OP["EXTENDED_ARG"]
CALL = OP["CALL"]
PRECALL = OP["PRECALL"]
KW_NAMES = OP["KW_NAMES"]
BINARY_SUBSCR = OP["BINARY_SUBSCR"]
CALL_FUNCTION_EX = OP["CALL_FUNCTION_EX"]
FOR_ITER = OP["FOR_ITER"]
SEND = OP["SEND"]
YIELD_VALUE = OP["YIELD_VALUE"]
RETURN_GENERATOR = OP["RETURN_GENERATOR"]
POP_TOP = OP["POP_TOP"]
RESUME = OP["RESUME"]
PUSH_NULL = OP["PUSH_NULL"]
LOAD_CONST = OP["LOAD_CONST"]
LOAD_FAST = OP["LOAD_FAST"]
STORE_FAST = OP["STORE_FAST"]
DELETE_FAST = OP["DELETE_FAST"]
UNPACK_SEQUENCE = OP["UNPACK_SEQUENCE"]
JUMP_FORWARD = OP["JUMP_FORWARD"]
COPY = OP["COPY"]
SWAP = OP["SWAP"]
LOAD_ATTR = OP["LOAD_ATTR"]
LOAD_METHOD = OP["LOAD_METHOD"]
STORE_ATTR = OP["STORE_ATTR"]
STORE_SUBSCR = OP["STORE_SUBSCR"]
DELETE_SUBSCR = OP["DELETE_SUBSCR"]
BEFORE_WITH = OP["BEFORE_WITH"]
GET_ITER = OP["GET_ITER"]
COMPARE_OP = OP["COMPARE_OP"]
CONTAINS_OP = OP["CONTAINS_OP"]
BINARY_OP = OP["BINARY_OP"]
# BINARY_OP's argument: an index into dis._nb_ops, the in-place forms after the plain ones; the stem of the
# operator's methods (`__sub__`, `__rsub__`, `__isub__`) for each plain form, in that order.
NB_STEMS = ("add", "and", "floordiv", "lshift", "matmul", "mul", "mod", "or", "pow", "rshift", "sub", "truediv", "xor")
NB_SYMBOLS = tuple(sym for _, sym in dis._nb_ops)
NB_INPLACE = len(NB_STEMS)
# COMPARE_OP's argument (Py_LT .. Py_GE): the method names, symbols and the reflected operation.
CMP_OPS = (("__lt__", "<"), ("__le__", "<="), ("__eq__", "=="), ("__ne__", "!="), ("__gt__", ">"), ("__ge__", ">="))
CMP_SWAPPED = (4, 5, 2, 3, 0, 1)
CHECK_EXC_MATCH = OP["CHECK_EXC_MATCH"]
POP_JUMP_FORWARD_IF_TRUE = OP["POP_JUMP_FORWARD_IF_TRUE"]
RERAISE = OP["RERAISE"]
RETURN_VALUE = OP["RETURN_VALUE"]
RAISE_VARARGS = OP["RAISE_VARARGS"]
_BACKWARD = {
    OP[n]
    for n in (
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "POP_JUMP_BACKWARD_IF_FALSE",
        "POP_JUMP_BACKWARD_IF_TRUE",
        "POP_JUMP_BACKWARD_IF_NONE",
        "POP_JUMP_BACKWARD_IF_NOT_NONE",
    )
}
_JREL = set(dis.hasjrel)
_NO_FALLTHROUGH = {
    OP[n] for n in ("JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "RETURN_VALUE", "RAISE_VARARGS", "RERAISE")
}
_HAVE_ARGUMENT = opcode.HAVE_ARGUMENT
# Quickened (adaptive) code: a breakpoint is a jump to itself, which checks the eval breaker each time round;
# a superinstruction executes the unit after it too, reading that unit's argument without dispatching on it.
JUMP_BACKWARD_QUICK = dis._all_opmap["JUMP_BACKWARD_QUICK"]
_SUPERINSTRUCTIONS = {op for name, op in dis._all_opmap.items() if "__" in name}

FRAME_OWNED_BY_GENERATOR = 1
CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08
CO_GENERATOR = 0x20
CO_ASYNC = 0x80 | 0x100 | 0x200  # coroutine, iterable coroutine, async generator

GEN_CREATED, GEN_SUSPENDED = -2, -1  # gi_frame_state values
