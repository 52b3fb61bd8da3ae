//! Histories of what clients saw while a nemesis broke the ensemble, and the checkers that
//! judge them against Coord's promises.

pub mod history;
