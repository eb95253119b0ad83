"""Rule packs: YAML files that describe a vendor's bounce format (see ``rules/README.md``).

A pack is data: how its bounces are recognised (header and body patterns), where the error
report starts and where the returned original starts, recipient patterns with named groups,
and text rules that map diagnostic text to a reason and an enhanced status.  Packs are found
by walking ``rules/`` (and the user's ``--rules`` directories, which come first; a user pack
with the id of a shipped one replaces it).  Adding a vendor is one YAML file and a sample.

Every pattern is compiled with the ``regex`` package and run with a time limit
(``Options.pattern_timeout``): a pattern that times out is reported once through ``logging``
and counts as "no match", so a bad pattern cannot hang a run.  A search whose backtracking
is bounded by the pattern and the text's length (:mod:`dsnparse.backtrack`) runs without the
timer on texts short enough for the bound to stay small.

Validation happens at load: bad YAML, an unknown key, a wrong type or a pattern that does not
compile raises :class:`~dsnparse.errors.RuleError` naming the file, the rule and the field.

One module per responsibility (each imports only those above it in this list):

- :mod:`.literals` — the literals every match of a pattern requires (the prefilter), and the
  split of a long alternation into branches;
- :mod:`.pattern` — :class:`~.pattern.Pattern`: compiled on first use, searched under the
  time limit (the ``regex`` timeout wrapper, the once-only time-out report);
- :mod:`.pack` — the loaded pack's data classes (``Pack``, ``Condition``, ``RecipientRule``,
  ``TextRule``) and the kinds and actions a pack may state;
- :mod:`.automaton` — many literals found in one pass over a text (Aho-Corasick), and the
  branches of a long phrase list that may match;
- :mod:`.address` — a recipient match cleaned into an address; the mail system's own and the
  notified addresses, never failed recipients;
- :mod:`.detection` — which packs apply to a message: trigger literals, the dispatch
  automaton, detection conditions;
- :mod:`.extract` — the report region and the recipients a pack's rules find in it;
- :mod:`.textrules` — text rules: the index over a pack list, the first matching rule, the
  packs whose text rules apply to a verdict;
- :mod:`.cache` — the signed pickle of validated packs in the user's cache directory;
- :mod:`.loader` — reading, validating and compiling pack files, the pack list.

:mod:`dsnparse.rules` re-exports all of it (the names callers have always used).  The
package is not ``dsnparse/rules``: a wheel installs the shipped ``rules/`` data directory
there (``pyproject.toml``, ``force-include``).
"""
