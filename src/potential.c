/* potential: being written */
