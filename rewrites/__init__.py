"""Graph rewrites (pattern engine, rule sets, fusion); filled in by the rewrites issue."""
