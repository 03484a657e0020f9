import cartpk

cartpk.enable_x64()
