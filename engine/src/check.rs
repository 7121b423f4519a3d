//! History recording and checkers (linearizability, execution order, Dynamo no-lost-write).
