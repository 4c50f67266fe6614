"""The standard library's introspection: dataclasses (fields, asdict, replace, ordering, frozen, slots), enum
(Flag, auto, IntEnum), typing (get_type_hints, NamedTuple, TypedDict, Protocol, Generic), inspect (signature,
bind, getattr_static, getmembers, getsource-free checks)."""
import dataclasses
import enum
import inspect
import typing
from dataclasses import dataclass, field


class Perm(enum.Flag):
    READ = enum.auto()
    WRITE = enum.auto()
    EXEC = enum.auto()


class Level(enum.IntEnum):
    LOW = 1
    MID = 5
    HIGH = 9


@dataclass(order=True)
class Task:
    priority: int
    name: str = field(compare=False)
    tags: typing.List[str] = field(default_factory=list, compare=False)
    level: Level = Level.LOW

    @property
    def weight(self) -> float:
        return self.priority * int(self.level) / (1 + len(self.tags))


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float

    def __add__(self, other: "Point") -> "Point":
        return Point(self.x + other.x, self.y + other.y)


class Pair(typing.NamedTuple):
    left: int
    right: int = 0


class Record(typing.TypedDict):
    id: int
    label: str


T = typing.TypeVar("T")


class Box(typing.Generic[T]):
    def __init__(self, item: T) -> None:
        self.item = item

    def get(self) -> T:
        return self.item


@typing.runtime_checkable
class HasWeight(typing.Protocol):
    @property
    def weight(self) -> float: ...


def schedule(tasks: typing.Sequence[Task], *, limit: int = 3, perms: Perm = Perm.READ, **extra: typing.Any) -> typing.List[str]:
    return [t.name for t in sorted(tasks)[:limit]]


def main(inp):
    tasks = [Task((i * 37) % 11, f"t{i}", [f"g{j}" for j in range(i % 4)], Level(((i % 3) * 4) + 1)) for i in range(inp["n"])]
    sig = inspect.signature(schedule)
    out = {"params": [[p.name, str(p.kind), repr(p.default)] for p in sig.parameters.values()]}
    out["hints"] = sorted((k, repr(v)) for k, v in typing.get_type_hints(schedule).items())
    bound = sig.bind(tasks, limit=inp["limit"], color="red")
    bound.apply_defaults()
    out["bound"] = schedule(*bound.args, **bound.kwargs)
    out["weights"] = [round(t.weight, 9) for t in tasks[:20]]
    out["asdict"] = [dataclasses.asdict(t) for t in tasks[:5]]
    out["replaced"] = repr(dataclasses.replace(tasks[0], priority=99))
    out["fields"] = [(f.name, f.compare) for f in dataclasses.fields(Task)]
    p = Point(0.0, 0.0)
    for i in range(inp["n"]):
        p = p + Point(i * 0.5, -i * 0.25)
    out["point"] = [p.x, p.y, hasattr(p, "__dict__")]
    perms = [Perm(i) for i in range(8)]
    out["perms"] = [[str(x), x.value, Perm.WRITE in x] for x in perms]
    out["levels"] = [int(max(Level)), sorted(Level.__members__), Level(5).name]
    pairs = [Pair(i, i * i)._replace(right=-i) for i in range(10)]
    out["pairs"] = [p._asdict() for p in pairs[:3]] + [Pair._fields, list(Pair._field_defaults.items())]
    recs: typing.List[Record] = [{"id": i, "label": f"r{i}"} for i in range(5)]
    out["recs"] = [sorted(Record.__annotations__), recs[-1]]
    out["box"] = [Box(t).get().name for t in tasks[:3]]
    out["protocol"] = [isinstance(t, HasWeight) for t in (tasks[0], p)]
    out["static"] = [type(inspect.getattr_static(Task, "weight")).__name__, type(inspect.getattr_static(tasks[0], "name")).__name__]
    out["members"] = [n for n, _ in inspect.getmembers(Task, inspect.isfunction)]
    out["isdc"] = [dataclasses.is_dataclass(t) for t in (tasks[0], Task, p, pairs[0])]
    return out
