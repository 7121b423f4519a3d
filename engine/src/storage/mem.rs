use super::Storage;
use std::convert::Infallible;

/// An in-memory disk: records are durable only once synced, and [`crash`](Self::crash)
/// loses the rest.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    synced: Vec<Vec<u8>>,
    unsynced: Vec<Vec<u8>>,
}

impl MemStorage {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lose every record not yet synced, as a power cut or `kill -9` would.
    pub fn crash(&mut self) {
        self.unsynced.clear();
    }

    /// Records appended but not yet synced.
    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len()
    }
}

impl Storage for MemStorage {
    type Error = Infallible;

    fn append(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error> {
        self.unsynced.extend(records.iter().cloned());
        Ok(())
    }

    fn sync(&mut self) -> Result<u64, Self::Error> {
        self.synced.append(&mut self.unsynced);
        Ok(self.synced.len() as u64)
    }

    fn replay(&mut self) -> Result<Vec<Vec<u8>>, Self::Error> {
        Ok(self.synced.clone())
    }

    fn compact(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error> {
        self.synced = records.to_vec();
        self.unsynced.clear();
        Ok(())
    }
}

#[cfg(test)]
#[path = "mem_test.rs"]
mod tests;
