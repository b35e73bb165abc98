"""An independent fold of the analytics definitions (projectors/include/proj/analytics.h)
over the events of `stockpot-replay dump`, in plain Python, for the end-to-end tests to
compare the analytics view's answers with: per-day counters, users active per day (the
envelope's actor), DAU/WAU/MAU and stickiness, periods, the signup-cohort triangle and
popular recipes over a window."""

import datetime

DAY_US = 86400 * 10**6
HOUR_US = 3600 * 10**6
EPOCH = datetime.date(1970, 1, 1)

COUNTER = {
    "UserRegistered": "registrations", "SessionStarted": "logins", "SessionRefreshed": "refreshes",
    "SessionRevoked": "logouts", "ProfileUpdated": "profile_updates", "RecipeCreated": "recipes_created",
    "RecipeUpdated": "recipes_updated", "RecipeDeleted": "recipes_deleted", "RecipeLiked": "likes",
    "RecipeUnliked": "unlikes", "RecipeCommented": "comments", "CommentDeleted": "comments_deleted",
    "UserFollowed": "follows", "UserUnfollowed": "unfollows", "NotificationsRead": "notifications_read",
}
COUNTERS = list(COUNTER.values()) + ["messages"]


def time_us(s):
    """µs since the epoch of an envelope time (RFC 3339 UTC with microseconds)."""
    at = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    d = (at.date() - EPOCH).days
    return ((d * 86400 + at.hour * 3600 + at.minute * 60 + at.second) * 10**6) + at.microsecond


def day_of_date(s):
    return (datetime.date.fromisoformat(s) - EPOCH).days


def date_of_day(d):
    return (EPOCH + datetime.timedelta(days=d)).isoformat()


def week_of(d):
    return d - (d + 3) % 7  # 1970-01-01 was a Thursday; weeks start on Monday


def next_month(d):
    x = EPOCH + datetime.timedelta(days=d)
    y, m = (x.year + 1, 1) if x.month == 12 else (x.year, x.month + 1)
    return (datetime.date(y, m, 1) - EPOCH).days


class Fold:
    def __init__(self, events):
        self.counts = {}  # day -> {counter: n}
        self.active = {}  # day -> set of actor ids
        self.reg_day = {}  # user id -> day of registration
        self.title, self.author, self.deleted = {}, {}, set()
        self.reactions = []  # (time_us, recipe id, "likes"|"comments"|"unlikes")
        for e in events:
            name = COUNTER.get(e["type"])
            if name is None:
                continue
            t = time_us(e["time"])
            d = t // DAY_US
            row = self.counts.setdefault(d, {})
            row[name] = row.get(name, 0) + 1
            if e.get("actor"):
                self.active.setdefault(d, set()).add(e["actor"])
            data = e["data"]
            rid = e["stream"].split("-", 1)[1] if e["stream"].startswith("recipe-") else None
            if e["type"] == "UserRegistered":
                self.reg_day[data["user_id"]] = d
            elif e["type"] == "RecipeCreated":
                self.title[rid], self.author[rid] = data["title"], data["author_id"]
            elif e["type"] == "RecipeUpdated" and "title" in data:
                self.title[rid] = data["title"]
            elif e["type"] == "RecipeDeleted":
                self.deleted.add(rid)
            elif e["type"] in ("RecipeLiked", "RecipeUnliked", "RecipeCommented"):
                self.reactions.append((t, data["recipe_id"], name))

    def union(self, lo, hi):
        out = set()
        for d in range(lo, hi + 1):
            out |= self.active.get(d, set())
        return out

    def summary(self, lo, hi):
        days = []
        for d in range(lo, hi + 1):
            row = {c: self.counts.get(d, {}).get(c, 0) for c in COUNTERS}
            row["date"], row["active"] = date_of_day(d), len(self.active.get(d, ()))
            days.append(row)
        totals = {c: sum(r[c] for r in days) for c in COUNTERS}
        totals["active"] = len(self.union(lo, hi))
        mau = len(self.union(hi - 29, hi))
        month = sum(len(self.active.get(d, ())) for d in range(hi - 29, hi + 1))
        return {"days": days, "totals": totals, "dau": len(self.active.get(hi, ())),
                "wau": len(self.union(hi - 6, hi)), "mau": mau,
                "stickiness": (month / 30.0) / mau if mau else 0.0}

    def periods(self, granularity, lo, hi):
        out, start = [], lo
        while start <= hi:
            if granularity == "day":
                end = start
            elif granularity == "week":
                end = week_of(start) + 6
            else:
                end = next_month(start) - 1
            end = min(end, hi)
            out.append({"start": date_of_day(start), "end": date_of_day(end),
                        "active": len(self.union(start, end))})
            start = end + 1
        return out

    def retention(self, lo, hi):
        first, last = week_of(lo), week_of(hi)
        weeks = [self.union(w, min(w + 6, hi)) for w in range(first, last + 1, 7)]
        rows = []
        for k, w in enumerate(range(first, last + 1, 7)):
            members = {u for u, d in self.reg_day.items() if week_of(d) == w}
            if not members:
                continue
            rows.append({"week": date_of_day(w), "size": len(members),
                         "active": [len(members & weeks[j]) for j in range(k, len(weeks))]})
        return rows

    def popular(self, window, at_us, limit):
        if window == "24h":
            h = at_us // HOUR_US
            keep = lambda t: h - 23 <= t // HOUR_US <= h  # noqa: E731
        elif window in ("7d", "30d"):
            d, span = at_us // DAY_US, 7 if window == "7d" else 30
            keep = lambda t: d - span + 1 <= t // DAY_US <= d  # noqa: E731
        else:
            keep = lambda t: True  # noqa: E731
        sums = {}
        for t, rid, kind in self.reactions:
            if keep(t):
                s = sums.setdefault(rid, {"likes": 0, "comments": 0, "unlikes": 0})
                s[kind] += 1
        rows = []
        for rid, s in sums.items():
            if rid in self.deleted:
                continue
            rows.append(dict(s, id=rid, title=self.title.get(rid, ""),
                             score=s["likes"] + 2 * s["comments"] - s["unlikes"]))
        rows.sort(key=lambda r: (-r["score"], int(r["id"])))
        return rows[:limit]
