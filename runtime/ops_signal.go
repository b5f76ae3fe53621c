package runtime

var signalOps = []opDef{}
