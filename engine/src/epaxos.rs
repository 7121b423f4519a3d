//! EPaxos: leaderless consensus with fast and slow paths and dependency-graph execution.
