-- Room on each page for the next version of a row the projection updates often.
--
-- The projection moves users.version and the users' and recipes' counters once per batch
-- (pg_internal.h), and sessions and read marks on every refresh and read. On a full page
-- the new row version goes to another page and every index of the table gets an entry for
-- it; with free space on its own page PostgreSQL makes a heap-only tuple (HOT) update and
-- touches no index. Recipe rows are wide (the ingredients and steps), so without room the
-- counter updates of a catch-up rewrote index entries for nearly every like and comment
-- batch (about 13 µs an update on a 1,000,000-event log; mostly HOT at 50: about 9 µs).
-- The pages written from here on keep the room; a rebuild (stockpot-replay rebuild pg)
-- writes every table anew with it.
ALTER TABLE stockpot.recipes SET (fillfactor = 50);
ALTER TABLE stockpot.users SET (fillfactor = 50);
ALTER TABLE stockpot.sessions SET (fillfactor = 70);
ALTER TABLE stockpot.notification_reads SET (fillfactor = 70);
